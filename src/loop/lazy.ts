/**
 * What protoloop loads on first use, and the one module allowed to call `import()`
 * (scripts/import-graph.ts checks it).
 *
 * Two kinds of module are loaded here:
 * - **the areas above the loop** (transports, WebSocket, subprocesses, executors, the
 *   thread bridge): the Loop's I/O methods are written in loop.ts and reach the code
 *   that does the work through these loaders, so that src/loop imports no higher
 *   folder at run time and no area installs methods on the Loop by side effect;
 * - **the heavy dependencies** (ws, execa): `import('protoloop')` does not load them
 *   (they are most of a cold start's time); the first WebSocket or subprocess does.
 *
 * A {@link Lazy} keeps the module once loaded, so that a call after the first one
 * reads `lazy.value` and runs synchronously: no await per call.
 * @module
 */

/** A module loaded by the first call that needs it, then kept. */
export class Lazy<T> {
  /** The module, once loaded: callers take this synchronous path first. */
  value: T | undefined = undefined;
  #loading: Promise<T> | undefined = undefined;
  readonly #importer: () => Promise<T>;

  constructor(importer: () => Promise<T>) {
    this.#importer = importer;
  }

  /**
   * The module, loading it on the first call. Calls made while it loads share one
   * promise, so their continuations run in call order. A failed load is retried by
   * the next call.
   */
  load(): Promise<T> {
    if (this.#loading === undefined) {
      this.#loading = this.#importer().then(
        (m) => {
          this.value = m;
          return m;
        },
        (e: unknown) => {
          this.#loading = undefined;
          throw e;
        },
      );
    }
    return this.#loading;
  }

  /**
   * `fn(module)` as a promise: at once when the module is loaded (a throw becomes a
   * rejection, so an async method fails the same way on the first call and later).
   */
  use<R>(fn: (m: T) => R | Promise<R>): Promise<R> {
    const m = this.value;
    if (m === undefined) return this.load().then(fn);
    try {
      return Promise.resolve(fn(m));
    } catch (e) {
      return Promise.reject(e);
    }
  }
}

// The areas: the modules that implement the Loop's I/O methods.
export const netArea = new Lazy(() => import('../transports/net/loop-methods.ts'));
export const webSocketArea = new Lazy(() => import('../transports/websocket/loop-methods.ts'));
export const subprocessArea = new Lazy(() => import('../subprocess/loop-methods.ts'));
export const executorsArea = new Lazy(() => import('../executors/loop-methods.ts'));
export const bridgeArea = new Lazy(() => import('../executors/bridge-server.ts'));

// The heavy dependencies.
export const wsLib = new Lazy(() => import('ws'));
export const execaLib = new Lazy(() => import('execa'));

// Node's own modules that weigh on a cold start (tls with crypto, http and https with
// their agents and http2): taken synchronously on first use, which needs no import().
let tlsModule: typeof import('node:tls') | undefined;
let httpModule: typeof import('node:http') | undefined;
let httpsModule: typeof import('node:https') | undefined;

/** `node:tls`, loaded on first use. */
export function nodeTls(): typeof import('node:tls') {
  return (tlsModule ??= process.getBuiltinModule('node:tls'));
}

/** `node:http`, loaded on first use. */
export function nodeHttp(): typeof import('node:http') {
  return (httpModule ??= process.getBuiltinModule('node:http'));
}

/** `node:https`, loaded on first use. */
export function nodeHttps(): typeof import('node:https') {
  return (httpsModule ??= process.getBuiltinModule('node:https'));
}
