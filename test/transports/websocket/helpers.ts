// Shared pieces of the WebSocket suites: recording protocols, a raw TCP WebSocket
// client that speaks the handshake and frames by hand (to send what ws never would),
// and an exception-handler recorder.
import net from 'node:net';
import { randomBytes } from 'node:crypto';
import { MessageProtocol, getRunningLoop } from '../../../src/index.ts';
import type { ExceptionContext, WebSocketTransport } from '../../../src/index.ts';
import { eventually } from '../../helpers.ts';

/** Records every protocol callback, in order. */
export class Recorder extends MessageProtocol {
  transport!: WebSocketTransport;
  events: string[] = [];
  messages: Array<Buffer | string> = [];
  lost: Error | undefined | 'not yet' = 'not yet';
  lostCount = 0;
  override connectionMade(t: WebSocketTransport): void {
    this.transport = t;
    this.events.push('made');
  }
  override messageReceived(data: Buffer | string, isBinary: boolean): void {
    this.messages.push(data);
    this.events.push(`msg:${isBinary ? 'bin' : 'text'}`);
  }
  override connectionLost(exc: Error | undefined): void {
    this.lost = exc;
    this.lostCount++;
    this.events.push('lost');
  }
  override pauseWriting(): void {
    this.events.push('pause');
  }
  override resumeWriting(): void {
    this.events.push('resume');
  }
}

/** Echoes every message back. */
export class Echo extends Recorder {
  override messageReceived(data: Buffer | string, isBinary: boolean): void {
    super.messageReceived(data, isBinary);
    this.transport.send(data);
  }
}


/** Collects what reaches the loop's exception handler. */
export function recordExceptions(): ExceptionContext[] {
  const seen: ExceptionContext[] = [];
  getRunningLoop().setExceptionHandler((_loop, ctx) => {
    seen.push(ctx);
  });
  return seen;
}

/** Builds one WebSocket frame. Client frames are masked unless `mask: false`. */
export function frame(opcode: number, payload: Buffer, options: { mask?: boolean; fin?: boolean; rsv?: number } = {}): Buffer {
  const mask = options.mask ?? true;
  const fin = options.fin ?? true;
  const len = payload.length;
  const head: number[] = [(fin ? 0x80 : 0) | ((options.rsv ?? 0) << 4) | opcode];
  if (len < 126) head.push((mask ? 0x80 : 0) | len);
  else if (len < 65536) head.push((mask ? 0x80 : 0) | 126, len >> 8, len & 0xff);
  else {
    head.push((mask ? 0x80 : 0) | 127, 0, 0, 0, 0);
    head.push((len >>> 24) & 0xff, (len >>> 16) & 0xff, (len >>> 8) & 0xff, len & 0xff);
  }
  if (!mask) return Buffer.concat([Buffer.from(head), payload]);
  const key = randomBytes(4);
  const masked = Buffer.alloc(len);
  for (let i = 0; i < len; i++) masked[i] = payload[i]! ^ key[i & 3]!;
  return Buffer.concat([Buffer.from(head), key, masked]);
}

/** A frame received by the raw client. */
export interface RawFrame {
  opcode: number;
  payload: Buffer;
}

/**
 * A raw TCP client that completes the WebSocket handshake, then lets the test write
 * arbitrary bytes and parses the server's (unmasked) frames. It never answers pings
 * unless told to, so it doubles as a peer that has vanished.
 */
export class RawClient {
  readonly socket: net.Socket;
  frames: RawFrame[] = [];
  ended = false;
  closed = false;
  status = 0;
  response = '';
  #buf = Buffer.alloc(0);
  #handshaken = false;

  private constructor(socket: net.Socket) {
    this.socket = socket;
    socket.on('data', (d: Buffer) => this.#onData(d));
    socket.on('end', () => {
      this.ended = true;
    });
    socket.on('close', () => {
      this.closed = true;
    });
    socket.on('error', () => {});
  }

  /** Connects and sends the upgrade request for `path`; resolves once the response head arrived. */
  static async connect(port: number, path = '/', headers: Record<string, string> = {}): Promise<RawClient> {
    const socket = net.connect({ host: '127.0.0.1', port });
    const c = new RawClient(socket);
    const extra = Object.entries(headers).map(([k, v]) => `${k}: ${v}\r\n`).join('');
    socket.write(
      `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
        `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\nSec-WebSocket-Version: 13\r\n${extra}\r\n`,
    );
    await eventually(() => c.#handshaken || c.closed, 5000, 'handshake response');
    return c;
  }

  #onData(d: Buffer): void {
    this.#buf = Buffer.concat([this.#buf, d]);
    if (!this.#handshaken) {
      const end = this.#buf.indexOf('\r\n\r\n');
      if (end === -1) return;
      this.response = this.#buf.subarray(0, end).toString();
      this.status = Number(this.response.split(' ')[1]);
      this.#buf = this.#buf.subarray(end + 4);
      this.#handshaken = true;
      if (this.status !== 101) {
        this.response += `\r\n\r\n${this.#buf.toString()}`;
        this.#buf = Buffer.alloc(0);
        return;
      }
    }
    for (;;) {
      const b = this.#buf;
      if (b.length < 2) return;
      let len = b[1]! & 0x7f;
      let off = 2;
      if (len === 126) {
        if (b.length < 4) return;
        len = b.readUInt16BE(2);
        off = 4;
      } else if (len === 127) {
        if (b.length < 10) return;
        len = Number(b.readBigUInt64BE(2));
        off = 10;
      }
      if (b.length < off + len) return;
      this.frames.push({ opcode: b[0]! & 0x0f, payload: Buffer.from(b.subarray(off, off + len)) });
      this.#buf = b.subarray(off + len);
    }
  }

  /** The close code of the first close frame received, or undefined. */
  closeCode(): number | undefined {
    const f = this.frames.find((x) => x.opcode === 8);
    return f === undefined || f.payload.length < 2 ? undefined : f.payload.readUInt16BE(0);
  }

  write(bytes: Buffer): void {
    this.socket.write(bytes);
  }

  destroy(): void {
    this.socket.destroy();
  }
}

export { eventually };
