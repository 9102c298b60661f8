/**
 * The idle timer of a server connection: closes it after `idleTimeout` ms with no
 * byte read or written.
 *
 * Activity is a flag the transport sets on each read and write (no clock read, no
 * timer moved per byte); the timer, on the loop's clock (`loop.callLater`), looks
 * every quarter of the timeout and fires after four quiet looks in a row, so a
 * connection is closed between `idleTimeout` and 1.25 x `idleTimeout` ms after its
 * last byte. Bytes still draining from the write buffer count as activity (the host's
 * `idleProgress()` changed), so a slow but moving download is not cut.
 * @module
 */
import type { TimerHandle } from '../loop/handle.ts';
import type { Loop } from '../loop/loop.ts';

/** What an idle timer watches and tells. */
export interface IdleHost {
  /** A number that changes while bytes move without a read or write call (the write buffer size). */
  idleProgress(): number;
  /** The connection was idle for the timeout: close it (with an IdleTimeoutError). */
  idleExpired(ms: number): void;
}

const LOOKS = 4;

/** One connection's idle timer. */
export class IdleTimer {
  readonly #loop: Loop;
  readonly #ms: number;
  readonly #host: IdleHost;
  #handle: TimerHandle | null;
  #active = false;
  #quiet = 0;
  #progress: number;

  constructor(loop: Loop, ms: number, host: IdleHost) {
    this.#loop = loop;
    this.#ms = ms;
    this.#host = host;
    this.#progress = host.idleProgress();
    this.#handle = loop.callLater(ms / LOOKS, IdleTimer.#look, this);
  }

  /** A byte was read or written. */
  touch(): void {
    this.#active = true;
  }

  /** Stops the timer. Idempotent. */
  stop(): void {
    this.#handle?.cancel();
    this.#handle = null;
  }

  static #look(t: IdleTimer): void {
    if (t.#handle === null) return;
    const progress = t.#host.idleProgress();
    if (t.#active || progress !== t.#progress) {
      t.#active = false;
      t.#quiet = 0;
      t.#progress = progress;
    } else if (++t.#quiet >= LOOKS) {
      t.#handle = null;
      t.#host.idleExpired(t.#ms);
      return;
    }
    t.#handle = t.#loop.callLater(t.#ms / LOOKS, IdleTimer.#look, t);
  }
}
