/**
 * One direction of a memory link: bytes written by one transport on their way to the
 * other, in three stages, as in a TCP connection:
 *
 * ```
 * write() -> send queue --(window, bandwidth)--> wire --(latency)--> receive queue -> protocol
 *            (the sender's write buffer)          (in flight)         (the receiver's socket buffer)
 * ```
 *
 * The wire and the receive queue together hold at most {@link WINDOW} bytes: a
 * receiver that stops reading fills them, and the sender's buffer grows (so its
 * protocol is told `pauseWriting()`), as a real peer's receive window does. A FIN
 * (the writer's EOF) travels in order behind the bytes. Everything moves on the
 * loop's clock: `pump()` runs as a loop callback, arrivals are loop timers.
 * @module
 * @internal
 */
import type { TimerHandle } from '../loop/handle.ts';
import type { Loop } from '../loop/loop.ts';

/** Bytes a link direction holds in flight plus unread at the receiver (a TCP window). */
export const WINDOW = 256 * 1024;

/** The end of a pipe: what the pipe needs of the transports at each side. */
export interface PipeEnd {
  /** Whether the receiver takes data now (open, reading, connectionMade ran). */
  canReceive(): boolean;
  /** Hands bytes to the receiver's protocol; returns what it did not take (it paused reading halfway), or null. */
  receive(data: Buffer): Buffer | null;
  /** The FIN arrived (after every byte). */
  receiveEof(): void;
  /** The sender's buffer shrank to `size` bytes (flow control, close after flush). */
  drained(size: number): void;
  /** Whether the endpoint is closed (bytes reaching it reset the sender, as TCP does). */
  gone(): boolean;
  /** The receiver was gone when bytes reached it: the connection is reset. */
  peerReset(): void;
}

/** What the pipe asks of its link: whether bytes may pass, and the link's shape. */
export interface PipeLink {
  blocked(): boolean;
  latency(): number;
  bandwidth(): number;
}

interface InFlight {
  data: Buffer | null;
  at: number;
}

/** One direction of a link. */
export class Pipe {
  readonly #loop: Loop;
  readonly #link: PipeLink;
  #from: PipeEnd | null = null;
  #to: PipeEnd | null = null;
  #send: Buffer[] = [];
  #sendHead = 0;
  /** Bytes in the send queue (the sender's write buffer size). */
  sendBytes = 0;
  /** writeEof()/close() asked for a FIN behind the queue. */
  #finQueued = false;
  /** The FIN left the send queue. */
  finSent = false;
  #wire: InFlight[] = [];
  #wireBytes = 0;
  #wireFree = 0;
  #recv: Buffer[] = [];
  #recvBytes = 0;
  #finArrived = false;
  #finDelivered = false;
  #scheduled = false;
  #timer: TimerHandle | null = null;
  #dead = false;

  constructor(loop: Loop, link: PipeLink) {
    this.#loop = loop;
    this.#link = link;
  }

  /** Connects the two ends (done once both transports exist). */
  attach(from: PipeEnd, to: PipeEnd): void {
    this.#from = from;
    this.#to = to;
  }

  /** Bytes sent but not yet read by the receiver's protocol (wire plus receive queue). */
  get undelivered(): number {
    return this.#wireBytes + this.#recvBytes;
  }

  /** Queues `data` (owned by the pipe from now on). */
  write(data: Buffer): void {
    this.#send.push(data);
    this.sendBytes += data.byteLength;
    this.schedule();
  }

  /** Queues a FIN behind what is queued. */
  writeEof(): void {
    if (this.#finQueued) return;
    this.#finQueued = true;
    this.schedule();
  }

  /** Drops what the sender has not sent yet (abort). */
  dropSendQueue(): void {
    this.#send = [];
    this.#sendHead = 0;
    this.sendBytes = 0;
  }

  /** Drops everything and stops for good (reset, both ends closed). */
  kill(): void {
    this.#dead = true;
    this.dropSendQueue();
    this.#wire = [];
    this.#wireBytes = 0;
    this.#recv = [];
    this.#recvBytes = 0;
    this.#timer?.cancel();
    this.#timer = null;
  }

  /** Runs {@link pump} on the next loop iteration (once, however often asked). */
  schedule(): void {
    if (this.#scheduled || this.#dead || this.#loop.isClosed()) return;
    this.#scheduled = true;
    this.#loop.callSoon(pipePump, this);
  }

  /** Moves bytes as far as they can go now. */
  pump(): void {
    this.#scheduled = false;
    if (this.#dead || this.#from === null || this.#to === null) return;
    // A blocked link (partition, stall) still takes bytes into the sender's "kernel"
    // (the wire, up to the window); none of them arrive until it is unblocked.
    const blocked = this.#link.blocked();
    const now = this.#loop.time();
    for (;;) {
      const moved = this.#toWire(now);
      const arrived = !blocked && this.#arrive(now);
      const fed = this.#feed();
      if (this.#dead) return;
      if (this.#recvBytes > 0 && this.#to.gone()) {
        // Bytes for an endpoint that closed: the peer's stack answers with a RST.
        this.kill();
        this.#from.peerReset();
        return;
      }
      if (moved > 0 || this.sendBytes === 0) this.#from.drained(this.sendBytes);
      if (this.#dead) return;
      if (moved === 0 && !arrived && !fed) break;
    }
    this.#armArrival();
  }

  #toWire(now: number): number {
    let moved = 0;
    const latency = this.#link.latency();
    const bandwidth = this.#link.bandwidth();
    while (this.#sendHead < this.#send.length) {
      const room = WINDOW - this.#wireBytes - this.#recvBytes;
      if (room <= 0) break;
      let chunk = this.#send[this.#sendHead]!;
      if (chunk.byteLength > room) {
        this.#send[this.#sendHead] = chunk.subarray(room);
        chunk = chunk.subarray(0, room);
      } else {
        this.#send[this.#sendHead++] = undefined as unknown as Buffer;
      }
      this.sendBytes -= chunk.byteLength;
      this.#wireBytes += chunk.byteLength;
      moved += chunk.byteLength;
      let leaves = now;
      if (bandwidth !== Infinity) {
        leaves = Math.max(now, this.#wireFree) + (chunk.byteLength * 1000) / bandwidth;
        this.#wireFree = leaves;
      }
      this.#wire.push({ data: chunk, at: leaves + latency });
    }
    if (this.#sendHead === this.#send.length && this.#sendHead > 0) {
      this.#send = [];
      this.#sendHead = 0;
    }
    if (this.#sendHead === this.#send.length && this.#finQueued && !this.finSent) {
      this.finSent = true;
      this.#wire.push({ data: null, at: Math.max(now, this.#wireFree) + latency });
    }
    return moved;
  }

  #arrive(now: number): boolean {
    const wire = this.#wire;
    let i = 0;
    while (i < wire.length && wire[i]!.at <= now) {
      const { data } = wire[i++]!;
      if (data === null) {
        this.#finArrived = true;
      } else {
        this.#wireBytes -= data.byteLength;
        this.#recv.push(data);
        this.#recvBytes += data.byteLength;
      }
    }
    if (i > 0) wire.splice(0, i);
    return i > 0;
  }

  #feed(): boolean {
    const to = this.#to!;
    let fed = false;
    while (this.#recv.length > 0 && to.canReceive()) {
      const data = this.#recv.shift()!;
      this.#recvBytes -= data.byteLength;
      fed = true;
      const rest = to.receive(data);
      if (this.#dead) return true;
      if (rest !== null && rest.byteLength > 0) {
        this.#recv.unshift(rest);
        this.#recvBytes += rest.byteLength;
      }
    }
    if (this.#finArrived && !this.#finDelivered && this.#recv.length === 0 && to.canReceive()) {
      this.#finDelivered = true;
      fed = true;
      to.receiveEof();
    }
    return fed;
  }

  #armArrival(): void {
    this.#timer?.cancel();
    this.#timer = null;
    if (this.#wire.length === 0 || this.#dead || this.#link.blocked()) return;
    this.#timer = this.#loop.callAt(this.#wire[0]!.at, pipePump, this);
  }
}

function pipePump(pipe: Pipe): void {
  pipe.pump();
}
