/**
 * A chat server over WebSocket: rooms, nicknames, broadcast.
 *
 *   node examples/servers/chat.ts [--host 127.0.0.1] [--port 8080] [--slow-ms 5000]
 *
 * Prints `listening on ws://HOST:PORT` (port 0 picks a free one) and shuts down
 * cleanly on SIGINT or SIGTERM: stops accepting, closes every client with 1001
 * ("going away"), waits for them (at most 3 s), exits 0.
 *
 * The protocol is text lines, one per message. From a client:
 *   /nick NAME      change nickname (letters, digits, _ and -, at most 20)
 *   /join ROOM      leave the current room for ROOM (created on demand)
 *   /rooms          list the rooms and how many people are in each
 *   /who            list the people in the current room
 *   /quit           leave
 *   anything else   say it to the current room
 * From the server: `* ...` notices, `<nick> text` chat lines, `! ...` errors.
 *
 * Backpressure policy: a broadcast never queues more than the transport's high-water
 * mark (64 KiB) for any one client. When a client's write buffer is above it (the
 * transport called `pauseWriting()`), messages for that client are dropped (and
 * counted) instead of queued; when it drains (`resumeWriting()`) the client is told how
 * many it missed. A client that stays paused for `--slow-ms` (default 5000 ms) is
 * disconnected with close code 4008 ("too slow"). So one slow client costs the server
 * at most one buffer of 64 KiB plus one message, and never slows the others down.
 *
 * `serve()` starts the same server on the running loop (each call has its own rooms).
 */
import { parseArgs } from 'node:util';
import { MessageProtocol, getRunningLoop, run, type TimerHandle, type WebSocketTransport } from '../../src/index.ts';
import { untilSignal, type ServeOptions, type Served } from './_served.ts';

const NAME = /^[A-Za-z0-9_-]{1,20}$/;
const MAX_LINE = 2000;

/** Everyone, by room. */
class ChatRooms {
  readonly rooms = new Map<string, Set<ChatClient>>();
  readonly nicks = new Set<string>();
  #guests = 0;

  guestName(): string {
    let nick: string;
    do nick = `guest-${++this.#guests}`;
    while (this.nicks.has(nick));
    return nick;
  }

  join(client: ChatClient, room: string): void {
    let members = this.rooms.get(room);
    if (members === undefined) this.rooms.set(room, (members = new Set()));
    members.add(client);
    client.room = room;
    this.broadcast(room, `* ${client.nick} joined #${room}`);
  }

  leave(client: ChatClient, why = 'left'): void {
    const members = this.rooms.get(client.room);
    if (members === undefined || !members.delete(client)) return;
    if (members.size === 0 && client.room !== 'lobby') this.rooms.delete(client.room);
    else this.broadcast(client.room, `* ${client.nick} ${why} #${client.room}`);
  }

  broadcast(room: string, line: string): void {
    for (const member of this.rooms.get(room) ?? []) member.deliver(line);
  }
}

/** One connected person. */
class ChatClient extends MessageProtocol {
  nick = '';
  room = '';
  readonly #chat: ChatRooms;
  readonly #slowMs: number;
  #transport: WebSocketTransport | null = null;
  /** Writing is paused: the client reads more slowly than the room talks. */
  #paused = false;
  #dropped = 0;
  #slowTimer: TimerHandle | null = null;

  constructor(chat: ChatRooms, slowMs: number) {
    super();
    this.#chat = chat;
    this.#slowMs = slowMs;
  }

  override connectionMade(transport: WebSocketTransport): void {
    this.#transport = transport;
    this.nick = this.#chat.guestName();
    this.#chat.nicks.add(this.nick);
    this.deliver(`* welcome, ${this.nick}. Commands: /nick NAME, /join ROOM, /rooms, /who, /quit`);
    this.#chat.join(this, 'lobby');
  }

  override messageReceived(data: Buffer | string, isBinary: boolean): void {
    if (isBinary) {
      this.deliver('! text messages only');
      return;
    }
    const line = (data as string).trim();
    if (line.length === 0) return;
    if (line.length > MAX_LINE) {
      this.deliver(`! line too long (at most ${MAX_LINE} characters)`);
      return;
    }
    if (!line.startsWith('/')) {
      this.#chat.broadcast(this.room, `<${this.nick}> ${line}`);
      return;
    }
    const space = line.search(/\s/);
    const command = space === -1 ? line : line.slice(0, space);
    const arg = space === -1 ? '' : line.slice(space + 1).trim();
    switch (command) {
      case '/nick':
        if (!NAME.test(arg)) this.deliver('! usage: /nick NAME (letters, digits, _ and -, at most 20)');
        else if (this.#chat.nicks.has(arg)) this.deliver(`! ${arg} is taken`);
        else {
          const old = this.nick;
          this.#chat.nicks.delete(old);
          this.#chat.nicks.add(arg);
          this.nick = arg;
          this.#chat.broadcast(this.room, `* ${old} is now ${arg}`);
        }
        break;
      case '/join':
        if (!NAME.test(arg)) this.deliver('! usage: /join ROOM (letters, digits, _ and -, at most 20)');
        else if (arg === this.room) this.deliver(`! you are in #${arg} already`);
        else {
          this.#chat.leave(this);
          this.#chat.join(this, arg);
        }
        break;
      case '/rooms':
        this.deliver(`* rooms: ${[...this.#chat.rooms].map(([name, m]) => `#${name} (${m.size})`).join(', ')}`);
        break;
      case '/who':
        this.deliver(`* in #${this.room}: ${[...(this.#chat.rooms.get(this.room) ?? [])].map((c) => c.nick).join(', ')}`);
        break;
      case '/quit':
        this.#transport?.close(1000, 'bye');
        break;
      default:
        this.deliver(`! unknown command ${command}`);
    }
  }

  /** Sends `line` unless the client is behind: then it is dropped (see the policy above). */
  deliver(line: string): void {
    const t = this.#transport;
    if (t === null || t.isClosing()) return;
    if (this.#paused) {
      this.#dropped++;
      return;
    }
    t.send(line);
  }

  override pauseWriting(): void {
    this.#paused = true;
    this.#slowTimer = getRunningLoop().callLater(this.#slowMs, disconnectSlow, this);
  }

  override resumeWriting(): void {
    this.#paused = false;
    this.#slowTimer?.cancel();
    this.#slowTimer = null;
    if (this.#dropped > 0) {
      const n = this.#dropped;
      this.#dropped = 0;
      this.deliver(`* you missed ${n} message${n === 1 ? '' : 's'} while your connection was slow`);
    }
  }

  /** @internal Paused for too long. */
  tooSlow(): void {
    this.#slowTimer = null;
    // The close frame queues behind the stuck buffer; closeTimeout aborts if it never drains.
    this.#transport?.close(4008, 'too slow');
  }

  override connectionLost(): void {
    this.#slowTimer?.cancel();
    this.#chat.leave(this, 'quit');
    this.#chat.nicks.delete(this.nick);
    this.#transport = null;
  }
}

function disconnectSlow(client: ChatClient): void {
  client.tooSlow();
}

/** Options of the chat server. */
export interface ChatServeOptions extends ServeOptions {
  /** How long (ms) a client may stay behind before it is disconnected. Default 5000. */
  slowMs?: number;
}

/** Starts the chat server on the running loop, with rooms of its own. */
export async function serve(options: ChatServeOptions = {}): Promise<Served> {
  const log = options.log ?? console.error;
  const slowMs = options.slowMs ?? 5000;
  const chat = new ChatRooms();
  const server = await getRunningLoop().createWebSocketServer(() => new ChatClient(chat, slowMs), {
    host: options.host ?? '127.0.0.1',
    port: options.port ?? 8080,
    maxPayload: 16 * 1024,
    closeTimeout: 2000,
  });
  const { address, port } = server.address()!;
  let closing: Promise<void> | null = null;
  return {
    name: 'websocket chat',
    url: `ws://${address.includes(':') ? `[${address}]` : address}:${port}`,
    host: address,
    port,
    // Stop accepting, close every client with 1001 ("going away"), abort those still open after 3 s.
    close: () =>
      (closing ??= server.shutdown({ closeClients: true, timeout: 3000 }).then(({ aborted }) => {
        log(`closed${aborted > 0 ? ` (${aborted} clients aborted)` : ''}`);
      })),
  };
}

if (import.meta.main) {
  const { values } = parseArgs({
    options: {
      host: { type: 'string', default: '127.0.0.1' },
      port: { type: 'string', default: '8080' },
      'slow-ms': { type: 'string', default: '5000' },
    },
  });
  await run(
    async () => {
      const server = await serve({ host: values.host, port: Number(values.port), slowMs: Number(values['slow-ms']) });
      console.log(`listening on ${server.url}`);
      console.error(`${await untilSignal()}: shutting down`);
      await server.close();
    },
    { handleSigint: false },
  );
}
