/**
 * Symbols through which the subprocess modules reach each other's internals.
 * @module
 * @internal
 */

/** Pipe -> subprocess transport: bytes arrived on a read pipe. */
export const kPipeData = Symbol('protoloop.subprocess.pipeData');
/** Pipe -> subprocess transport: a pipe closed (with the error that broke it, if any). */
export const kPipeClosed = Symbol('protoloop.subprocess.pipeClosed');
/** Stdin pipe -> subprocess transport: its water marks were crossed. */
export const kPipeFlow = Symbol('protoloop.subprocess.pipeFlow');
/** Subprocess transport -> read pipe: hold (or release) reading while undelivered data piles up. */
export const kHold = Symbol('protoloop.subprocess.hold');
/** The back-reference from a Node stream or ChildProcess to the protoloop object that owns it. */
export const kOwner = Symbol('protoloop.subprocess.owner');
/** Subprocess transport: a loop Future resolved with the return code once the transport finished. */
export const kWaitFinished = Symbol('protoloop.subprocess.waitFinished');
/** Subprocess transport: stop the child politely, then SIGKILL after the grace period, then wait until it is reaped. */
export const kStop = Symbol('protoloop.subprocess.stop');
