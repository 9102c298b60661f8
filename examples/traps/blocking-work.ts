// The blocking work of examples/traps/blocking.ts, as a module a worker thread can load.

/** Spins the CPU for `ms` milliseconds (a stand-in for hashing, parsing, compressing). */
export function crunch(ms: number): number {
  const end = performance.now() + ms;
  let n = 0;
  while (performance.now() < end) n++;
  return n;
}
