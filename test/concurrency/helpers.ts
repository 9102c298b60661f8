// What the sync tests use: the public API of the loop core and of this area.
export * from '../../src/errors.ts';
export * from '../../src/loop/public.ts';
export * from '../../src/concurrency/public.ts';

/** Awaits `p` and returns what it threw; fails if it resolved. */
export async function caught(p: PromiseLike<unknown>): Promise<unknown> {
  try {
    await p;
  } catch (e) {
    return e;
  }
  throw new Error('expected a rejection, got a result');
}

/** The classes of the errors of an AggregateError (ExceptionGroup), as a set. */
export function errorTypes(e: unknown): Set<unknown> {
  if (!(e instanceof AggregateError)) throw new Error(`expected an ExceptionGroup, got ${String(e)}`);
  return new Set(e.errors.map((x: unknown) => (x as object).constructor));
}

export class MyExc extends Error {}
export class ZeroDiv extends Error {}
