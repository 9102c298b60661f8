// The trivial task of bench/executors.bench.ts, in the two shapes the two sides call.

/** protoloop: runInExecutor(pool, add, a, b). */
export function add(a: number, b: number): number {
  return a + b;
}

/** piscina: run([a, b], { name: 'addPair' }) — piscina passes one argument. */
export function addPair([a, b]: [number, number]): number {
  return a + b;
}
