/**
 * The one place where the adapter reaches into Fastify's private state.
 *
 * Fastify 5's `request.signal` is a lazy getter: on first access it creates an
 * AbortController, stores it under the private `kRequestSignal` symbol and aborts it
 * on the raw request's `'close'` event. That event also fires when a request body has
 * been read to its end (fastify/fastify#6725), so on a POST the signal aborts while
 * the handler is still working. The getter returns `request[kRequestSignal].signal`
 * when the slot is already filled, so the adapter fills it first with an object of its
 * own (see `HandlerCall`): the getter stays Fastify's, and it returns a signal that
 * aborts only when the client really goes away or the app cancels the handler.
 *
 * The symbols are module-private to Fastify (`Symbol(...)`, not `Symbol.for`), so they
 * are read from `fastify/lib/symbols.js` of the Fastify copy next to this package and
 * verified on the first request ({@link probeSignalSlot}); with another copy the
 * adapter falls back to public APIs only.
 * @module
 */
import { createRequire } from 'node:module';

/** Fastify's private symbols the adapter uses, or null when they cannot be loaded. */
export interface FastifySymbols {
  /** `request[kRequestSignal]`: the AbortController behind `request.signal`. */
  readonly kRequestSignal: symbol;
  /** `request[kOnAbort]`: the raw `'close'` listener that aborts it. */
  readonly kOnAbort: symbol;
}

function load(): FastifySymbols | null {
  try {
    const symbols = createRequire(import.meta.url)('fastify/lib/symbols.js') as Record<string, unknown>;
    const { kRequestSignal, kOnAbort } = symbols;
    if (typeof kRequestSignal !== 'symbol' || typeof kOnAbort !== 'symbol') return null;
    return { kRequestSignal, kOnAbort };
  } catch {
    return null;
  }
}

/** Loaded once; null when this Fastify has no such symbols. */
export const fastifySymbols: FastifySymbols | null = load();

/** What can sit in `request[kRequestSignal]`: anything with a `signal`. */
export interface SignalSlot {
  readonly signal: AbortSignal;
}

/**
 * Whether `request[kRequestSignal]` is the slot behind `request.signal` with the app's
 * Fastify copy: true or false, or null when this request cannot tell. Tried on an
 * app's first requests: `slot` must be a fresh object whose `signal` getter sets
 * `slot.probed`. A slot Fastify filled itself (its handler timeout) holds its
 * AbortController, which proves the symbol too.
 */
export function probeSignalSlot(request: object, slot: SignalSlot & { probed: boolean }): boolean | null {
  const symbols = fastifySymbols;
  if (symbols === null) return false;
  const req = request as Record<symbol, unknown>;
  const existing = req[symbols.kRequestSignal];
  if (existing !== undefined) return existing instanceof AbortController ? true : null;
  req[symbols.kRequestSignal] = slot;
  void (request as { signal?: AbortSignal }).signal;
  if (slot.probed) return true;
  // Another Fastify copy: undo, and let that copy keep its own signal.
  req[symbols.kRequestSignal] = undefined;
  return false;
}
