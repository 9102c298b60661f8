/**
 * Calling a job's or a bridge handler's function with the arguments that came in a
 * message: the message array carries them first, then bookkeeping fields.
 * @module
 */

/** `fn(...args.slice(0, argc))`, without the copy for the usual few arguments. */
export function applyArgs<R>(fn: (...a: any[]) => R, args: unknown[], argc: number): R {
  switch (argc) {
    case 0:
      return fn();
    case 1:
      return fn(args[0]);
    case 2:
      return fn(args[0], args[1]);
    case 3:
      return fn(args[0], args[1], args[2]);
    default:
      return fn(...(args.length === argc ? args : args.slice(0, argc)));
  }
}
