/**
 * A chat server over WebSocket: rooms, nicknames, broadcast.
 *
 *   node examples/servers/chat.ts [--host 127.0.0.1] [--port 8080] [--slow-ms 5000] [--redis redis://127.0.0.1:6379]
 *
 * With `--redis`, rooms span every chat process on that Redis (workers of
 * `serveWorkers()`, other hosts; see chat-bus.ts); nicknames, `/who` and `/rooms`
 * stay per process. Without it, everything is in this process.
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
 * Backpressure policy: every client gets every message, in order, or is disconnected;
 * nobody who reads ever loses a line. The decision rests on the transport's own flow
 * control, never on how fast anyone is:
 *  - while a client's write buffer is above the high-water mark (the transport called
 *    `pauseWriting()`), lines for it wait in a backlog of its own, flushed in order on
 *    `resumeWriting()`;
 *  - while anyone in a room is behind, whoever speaks there is held: their transport
 *    stops reading (`pauseReading()`), so TCP pushes back on them and the backlogs hold
 *    at most what one read carried. A room goes at the pace of its slowest reader; a
 *    talker that does not read its own lines is held by itself;
 *  - a client that is behind and makes no progress at all (its write buffer does not
 *    shrink) for `--slow-ms` (default 5000 ms) is not reading: it leaves the room at
 *    once, which releases the room, and is closed with 4008 ("too slow"). A backlog
 *    larger than 1 MiB (lines from elsewhere that nobody can hold back) has the same end.
 *
 * `serve()` starts the same server on the running loop (each call has its own rooms).
 */
import { parseArgs } from 'node:util';
import { MessageProtocol, getRunningLoop, run, type TimerHandle, type WebSocketTransport } from '../../src/index.ts';
import { LIMIT_ARGS, limitsFromArgs, untilSignal, webSocketLimits, type ServeOptions, type Served } from './_served.ts';
import { LocalBus, RedisBus, type ChatBus } from './chat-bus.ts';

const NAME = /^[A-Za-z0-9_-]{1,20}$/;
const MAX_LINE = 2000;

/** A backlog beyond this many bytes means the client cannot keep up with its room. */
const MAX_BACKLOG = 1024 * 1024;

/** One room: its members, who of them is behind, and the speakers held for them. */
class Room {
  readonly members = new Set<ChatClient>();
  /** Members whose transport asked for a pause (`pauseWriting()`) and who have not caught up. */
  readonly behind = new Set<ChatClient>();
  /** Speakers whose reading is paused until `behind` is empty. */
  readonly held = new Set<ChatClient>();
}

/** Everyone, by room. */
class ChatRooms {
  readonly rooms = new Map<string, Room>();
  readonly nicks = new Set<string>();
  /** Where lines go for the other processes (a no-op without Redis). */
  bus: ChatBus = new LocalBus();
  #guests = 0;

  guestName(): string {
    let nick: string;
    do nick = `guest-${++this.#guests}`;
    while (this.nicks.has(nick));
    return nick;
  }

  join(client: ChatClient, name: string): void {
    let room = this.rooms.get(name);
    if (room === undefined) this.rooms.set(name, (room = new Room()));
    if (room.members.size === 0) this.bus.watch(name);
    room.members.add(client);
    client.room = name;
    if (client.isBehind()) room.behind.add(client);
    this.broadcast(name, `* ${client.nick} joined #${name}`);
  }

  leave(client: ChatClient, why = 'left'): void {
    const room = this.rooms.get(client.room);
    if (room === undefined || !room.members.delete(client)) return;
    if (room.held.delete(client)) client.release();
    if (room.behind.delete(client)) this.#releaseIfCaughtUp(room);
    this.broadcast(client.room, `* ${client.nick} ${why} #${client.room}`);
    if (room.members.size !== 0) return;
    this.bus.unwatch(client.room);
    if (client.room !== 'lobby') this.rooms.delete(client.room);
  }

  /** Says `line` in room `name`: to everyone here at once, and to the other processes. */
  broadcast(name: string, line: string): void {
    this.local(name, line);
    this.bus.publish(name, line);
  }

  /** A line for the people in room `name` in this process (said here, or arrived from the bus). */
  local(name: string, line: string): void {
    for (const member of this.rooms.get(name)?.members ?? []) member.deliver(line);
  }

  /** `speaker` said something in its room: hold it while someone there is behind. */
  spoke(speaker: ChatClient): void {
    const room = this.rooms.get(speaker.room);
    if (room === undefined || room.behind.size === 0 || room.held.has(speaker)) return;
    room.held.add(speaker);
    speaker.hold();
  }

  fellBehind(client: ChatClient): void {
    this.rooms.get(client.room)?.behind.add(client);
  }

  caughtUp(client: ChatClient): void {
    const room = this.rooms.get(client.room);
    if (room !== undefined && room.behind.delete(client)) this.#releaseIfCaughtUp(room);
  }

  #releaseIfCaughtUp(room: Room): void {
    if (room.behind.size !== 0) return;
    for (const speaker of room.held) speaker.release();
    room.held.clear();
  }
}

/** One connected person. */
class ChatClient extends MessageProtocol {
  nick = '';
  room = '';
  readonly #chat: ChatRooms;
  readonly #slowMs: number;
  #transport: WebSocketTransport | null = null;
  /** Writing is paused: lines wait in the backlog until `resumeWriting()`. */
  #paused = false;
  #backlog: string[] = [];
  #backlogBytes = 0;
  /** The stall check while paused, and the buffer size it saw last. */
  #stallTimer: TimerHandle | null = null;
  #lastBuffered = 0;

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
    if (this.#transport === null) return;
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
      this.#chat.spoke(this);
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
          this.#chat.spoke(this);
        }
        break;
      case '/join':
        if (!NAME.test(arg)) this.deliver('! usage: /join ROOM (letters, digits, _ and -, at most 20)');
        else if (arg === this.room) this.deliver(`! you are in #${arg} already`);
        else {
          this.#chat.leave(this);
          this.#chat.join(this, arg);
          this.#chat.spoke(this);
        }
        break;
      case '/rooms':
        this.deliver(`* rooms: ${[...this.#chat.rooms].map(([name, r]) => `#${name} (${r.members.size})`).join(', ')}`);
        break;
      case '/who':
        this.deliver(`* in #${this.room}: ${[...(this.#chat.rooms.get(this.room)?.members ?? [])].map((c) => c.nick).join(', ')}`);
        break;
      case '/quit':
        this.#transport.close(1000, 'bye');
        break;
      default:
        this.deliver(`! unknown command ${command}`);
    }
  }

  /** Sends `line`, or keeps it in the backlog while the client is behind. */
  deliver(line: string): void {
    const t = this.#transport;
    if (t === null || t.isClosing()) return;
    if (!this.#paused) {
      t.send(line);
      return;
    }
    this.#backlog.push(line);
    this.#backlogBytes += line.length;
    if (this.#backlogBytes > MAX_BACKLOG) this.tooSlow();
  }

  isBehind(): boolean {
    return this.#paused || this.#backlog.length !== 0;
  }

  override pauseWriting(): void {
    this.#paused = true;
    this.#chat.fellBehind(this);
    if (this.#stallTimer === null) this.#armStallCheck();
  }

  override resumeWriting(): void {
    this.#paused = false;
    const t = this.#transport;
    if (t === null) return;
    // Flush in order; a send() past the high-water mark calls pauseWriting() again at once.
    let i = 0;
    while (i < this.#backlog.length && !this.#paused && !t.isClosing()) {
      const line = this.#backlog[i++]!;
      this.#backlogBytes -= line.length;
      t.send(line);
    }
    this.#backlog.splice(0, i);
    if (this.#paused) return;
    this.#stallTimer?.cancel();
    this.#stallTimer = null;
    this.#chat.caughtUp(this);
  }

  #armStallCheck(): void {
    this.#lastBuffered = this.#transport?.getWriteBufferSize() ?? 0;
    this.#stallTimer = getRunningLoop().callLater(this.#slowMs, checkStalled, this);
  }

  /** @internal The stall check: behind for `slowMs` with no byte written means not reading. */
  checkStalled(): void {
    this.#stallTimer = null;
    const t = this.#transport;
    if (t === null || !this.isBehind()) return;
    if (t.getWriteBufferSize() < this.#lastBuffered) this.#armStallCheck();
    else this.tooSlow();
  }

  /** Not reading: leave the room now (releasing it), then close with 4008. */
  tooSlow(): void {
    const t = this.#transport;
    if (t === null) return;
    this.#stallTimer?.cancel();
    this.#stallTimer = null;
    this.#backlog = [];
    this.#backlogBytes = 0;
    this.#chat.leave(this, 'quit');
    // The close frame queues behind the stuck buffer; closeTimeout aborts if it never drains.
    if (!t.isClosing()) t.close(4008, 'too slow');
  }

  /** Stop reading this speaker while someone in its room is behind. */
  hold(): void {
    this.#transport?.pauseReading();
  }

  release(): void {
    const t = this.#transport;
    if (t !== null && !t.isClosing()) t.resumeReading();
  }

  override connectionLost(): void {
    this.#stallTimer?.cancel();
    this.#stallTimer = null;
    this.#chat.leave(this, 'quit');
    this.#chat.nicks.delete(this.nick);
    this.#transport = null;
  }
}

function checkStalled(client: ChatClient): void {
  client.checkStalled();
}

/** Options of the chat server. */
export interface ChatServeOptions extends ServeOptions {
  /** How long (ms) a client may stay behind without any progress before it is disconnected. Default 5000. */
  slowMs?: number;
  /** `redis://host:port`: rooms span every process that uses the same Redis. Default: this process only. */
  redisUrl?: string;
  /** Set by serveWorkers(): share the port with SO_REUSEPORT (ignored here; node:cluster shares it). */
  reusePort?: boolean;
}

/** Starts the chat server on the running loop, with rooms of its own. */
export async function serve(options: ChatServeOptions = {}): Promise<Served> {
  const log = options.log ?? console.error;
  const slowMs = options.slowMs ?? 5000;
  const chat = new ChatRooms();
  if (options.redisUrl !== undefined && options.redisUrl !== '') chat.bus = await RedisBus.connect(options.redisUrl, (room, line) => chat.local(room, line), log);
  const server = await getRunningLoop().createWebSocketServer(() => new ChatClient(chat, slowMs), {
    host: options.host ?? '127.0.0.1',
    port: options.port ?? 8080,
    maxPayload: 16 * 1024,
    closeTimeout: 2000,
    ...webSocketLimits(options),
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
      (closing ??= server.shutdown({ closeClients: true, timeout: 3000 }).then(async ({ aborted }) => {
        await chat.bus.close();
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
      redis: { type: 'string' },
      ...LIMIT_ARGS,
    },
  });
  await run(
    async () => {
      const server = await serve({ host: values.host, port: Number(values.port), slowMs: Number(values['slow-ms']), redisUrl: values.redis, ...limitsFromArgs(values) });
      const stop = untilSignal(); // handlers in place before we say we listen
      console.log(`listening on ${server.url}`);
      console.error(`${await stop}: shutting down`);
      await server.close();
    },
    { handleSigint: false },
  );
}
