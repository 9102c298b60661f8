/**
 * A list of loop hooks: what a loop runs when it shuts down (`run()`/`Runner` await
 * the shutdown hooks) or closes (`close()` runs the close hooks). Clients (the
 * default executor, subprocess supervision, signals, the thread bridge, inspection,
 * the Fastify adapter) add a hook and keep the disposer it returns, rather than
 * pushing onto and splicing a shared array.
 * @module
 */

/** Hooks run in the order they were added; each one at most once. */
export class HookList<F extends () => unknown> {
  // Each add() gets its own entry, so the same function added twice is two hooks
  // and each disposer removes only its own.
  readonly #entries = new Set<{ readonly hook: F }>();

  /** Adds `hook`; returns its disposer (idempotent: removes the hook if it has not run yet). */
  add(hook: F): () => void {
    const entry = { hook };
    this.#entries.add(entry);
    return () => {
      this.#entries.delete(entry);
    };
  }

  /** Removes every hook and returns them, in order, for the caller to run. */
  take(): F[] {
    const hooks = Array.from(this.#entries, (e) => e.hook);
    this.#entries.clear();
    return hooks;
  }

  /** How many hooks wait to run. */
  get size(): number {
    return this.#entries.size;
  }
}
