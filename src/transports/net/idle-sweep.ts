/**
 * The idle timeouts of a server's connections, with one loop timer for all of them:
 * the same rule as the per-connection {@link IdleTimer} of src/transports/idle.ts (a
 * look every quarter of the timeout, closed after four quiet looks in a row; bytes
 * still draining count as activity), without a timer object per connection. What a
 * connection keeps is two numbers (its looks and its write-buffer size at the last
 * look); an idle connection costs no timer handle at all.
 *
 * A connection counts as active when it joins, so it is closed between `idleTimeout`
 * and 1.25 x `idleTimeout` ms after its last byte (or its start), whatever the phase
 * of the shared timer. The timer runs only while there are connections to watch.
 * A server hands its own set of clients to walk (no second set entry per connection);
 * those whose `idleSweep` is another (or none) are skipped.
 * @module
 */
import type { TimerHandle } from '../../loop/handle.ts';
import type { Loop } from '../../loop/loop.ts';

const LOOKS = 4;

/** @internal What a swept connection keeps and tells. */
export interface SweptConnection {
  /** The sweep watching it (null once it closed or expired). */
  readonly idleSweep: IdleSweep | null;
  /** -1: a byte moved since the last look; 0..LOOKS-1: quiet looks in a row. The connection sets -1 on each read and write. */
  idleLooks: number;
  /** The write-buffer size at the last look. */
  idleProgressSeen: number;
  /** A number that changes while bytes move without a read or write call (the write buffer size). */
  idleProgress(): number;
  /** The connection was idle for the timeout: close it (with an IdleTimeoutError). */
  idleExpired(ms: number): void;
}

/** @internal One server's idle timeout, shared by its connections. */
export class IdleSweep {
  readonly #loop: Loop;
  readonly #ms: number;
  /** What is walked at each look: the server's clients, or a set of our own. */
  readonly #members: ReadonlySet<object>;
  /** Our own set (no server's), kept by add() and delete(). */
  readonly #own: Set<SweptConnection> | null;
  #handle: TimerHandle | null = null;

  /** `members`: the set of connections to walk (a server's clients); without it the sweep keeps its own. */
  constructor(loop: Loop, ms: number, members?: ReadonlySet<object>) {
    this.#loop = loop;
    this.#ms = ms;
    this.#own = members === undefined ? new Set() : null;
    this.#members = members ?? this.#own!;
  }

  /** The timeout, ms. */
  get ms(): number {
    return this.#ms;
  }

  /** Starts watching `c` (counted as active now); `c.idleSweep` must be this sweep. */
  add(c: SweptConnection): void {
    c.idleLooks = -1;
    c.idleProgressSeen = c.idleProgress();
    this.#own?.add(c);
    this.#handle ??= this.#loop.callLater(this.#ms / LOOKS, IdleSweep.#look, this);
  }

  /** Stops watching `c` (it leaves the walked set, or its `idleSweep` is no longer this one). Idempotent. */
  delete(c: SweptConnection): void {
    const own = this.#own;
    if (own === null || !own.delete(c) || own.size > 0) return;
    this.#handle?.cancel();
    this.#handle = null;
  }

  static #look(s: IdleSweep): void {
    s.#handle = null;
    const expired: SweptConnection[] = [];
    for (const m of s.#members) {
      const c = m as SweptConnection;
      if (c.idleSweep !== s) continue;
      const progress = c.idleProgress();
      if (c.idleLooks < 0 || progress !== c.idleProgressSeen) {
        c.idleLooks = 0;
        c.idleProgressSeen = progress;
      } else if (++c.idleLooks >= LOOKS) {
        expired.push(c);
      }
    }
    for (const c of expired) {
      s.#own?.delete(c);
      c.idleExpired(s.#ms);
    }
    if (s.#members.size > 0 && s.#handle === null && !s.#loop.isClosed()) s.#handle = s.#loop.callLater(s.#ms / LOOKS, IdleSweep.#look, s);
  }
}
