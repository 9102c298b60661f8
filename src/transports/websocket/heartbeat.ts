/**
 * The WebSocket heartbeat: a ping every `interval` ms; a peer that sends no pong
 * within `timeout` ms of a ping counts as dead and its connection is aborted (the
 * owner is told through {@link kHeartbeatExpired}).
 *
 * ```
 * waiting --(interval)--> pong-due --pong--> (timeout elapses) --> waiting ...
 *                         pong-due --(timeout, no pong)--> stopped   owner[kHeartbeatExpired]()
 * any --stop()--> stopped
 * ```
 *
 * One loop timer per connection is alive at a time and nothing is cancelled on the
 * hot path: a pong only sets a flag that the check at `ping + timeout` reads. A ping
 * is queued behind the data already buffered for the peer, so a peer that stops
 * reading is caught as well: it cannot see the ping, so it cannot answer it.
 * @module
 */
import { inspect } from 'node:util';
import type { TimerHandle } from '../../loop/handle.ts';
import type { Loop } from '../../loop/loop.ts';
import type { ResolvedHeartbeat } from './options.ts';

/** The owner sends a ping. */
export const kHeartbeatPing = Symbol('protoloop.heartbeatPing');
/** The owner's peer missed a pong. */
export const kHeartbeatExpired = Symbol('protoloop.heartbeatExpired');

/** What a heartbeat drives. */
export interface HeartbeatOwner {
  [kHeartbeatPing](): void;
  [kHeartbeatExpired](): void;
}

type HeartbeatState = 'waiting' | 'pong-due' | 'stopped';

function heartbeatTick(hb: Heartbeat): void {
  hb.tick();
}

function heartbeatCheck(hb: Heartbeat): void {
  hb.check();
}

/** One connection's heartbeat. */
export class Heartbeat {
  state: HeartbeatState = 'waiting';
  readonly #loop: Loop;
  readonly #settings: ResolvedHeartbeat;
  #owner: HeartbeatOwner | null;
  #timer: TimerHandle | null;
  #pingAt = 0;
  #pongSeen = false;
  /** Round trip of the last answered ping, ms (-1 before the first). */
  lastRoundTrip = -1;

  constructor(loop: Loop, settings: ResolvedHeartbeat, owner: HeartbeatOwner) {
    this.#loop = loop;
    this.#settings = settings;
    this.#owner = owner;
    this.#timer = loop.callLater(settings.interval, heartbeatTick, this);
  }

  /** @internal Timer: send a ping and arm the check. */
  tick(): void {
    if (this.state === 'stopped') return;
    this.state = 'pong-due';
    this.#pongSeen = false;
    this.#pingAt = this.#loop.time();
    this.#timer = this.#loop.callLater(this.#settings.timeout, heartbeatCheck, this);
    this.#owner![kHeartbeatPing]();
  }

  /** @internal Timer: was the ping answered? */
  check(): void {
    if (this.state === 'stopped') return;
    if (!this.#pongSeen) {
      const owner = this.#owner!;
      this.stop();
      owner[kHeartbeatExpired]();
      return;
    }
    this.state = 'waiting';
    const delay = Math.max(0, this.#pingAt + this.#settings.interval - this.#loop.time());
    this.#timer = this.#loop.callLater(delay, heartbeatTick, this);
  }

  /** A pong arrived (an answer to any ping proves the peer reads). */
  pong(): void {
    if (this.state !== 'pong-due' || this.#pongSeen) return;
    this.#pongSeen = true;
    this.lastRoundTrip = this.#loop.time() - this.#pingAt;
  }

  /** Stops the heartbeat for good. Idempotent. */
  stop(): void {
    if (this.state === 'stopped') return;
    this.state = 'stopped';
    this.#timer?.cancel();
    this.#timer = null;
    this.#owner = null;
  }

  /** @internal */
  [inspect.custom](): string {
    const { interval, timeout } = this.#settings;
    return `<Heartbeat ${this.state} interval=${interval}ms timeout=${timeout}ms rtt=${this.lastRoundTrip < 0 ? '-' : `${this.lastRoundTrip.toFixed(1)}ms`}>`;
  }
}
