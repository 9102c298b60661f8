/**
 * How the chat example's rooms reach past one process: a bus that carries each line
 * said in a room to the other processes (workers of `serveWorkers()`, or other hosts).
 *
 * - {@link LocalBus} (the default): nothing leaves the process.
 * - {@link RedisBus}: Redis pub/sub, one channel per room (`chat:<room>`), subscribed
 *   while this process has someone in the room. ioredis is loaded only when a Redis
 *   URL is given (it is an optional dependency).
 *
 * Lines said here are delivered here at once, by the chat server itself, and published
 * for the others; a process ignores its own lines when Redis echoes them back. So when
 * Redis goes away, chat goes on within each process: publishing fails fast (no offline
 * queue: lines are not replayed late), the bus says so once, ioredis reconnects and
 * resubscribes, and the bus says that once too.
 */
import { randomUUID } from 'node:crypto';

/** A line that arrived from another process. */
export type RemoteLine = (room: string, line: string) => void;

/** What the chat server needs of a bus. */
export interface ChatBus {
  /** Tells the other processes; never throws, never blocks. */
  publish(room: string, line: string): void;
  /** This process has someone in `room` (first member) / no one any more (last one left). */
  watch(room: string): void;
  unwatch(room: string): void;
  close(): Promise<void>;
}

/** The in-process default: one process, nothing to tell anyone. */
export class LocalBus implements ChatBus {
  publish(): void {}
  watch(): void {}
  unwatch(): void {}
  async close(): Promise<void> {}
}

interface RedisLike {
  on(event: string, listener: (...args: any[]) => void): unknown;
  publish(channel: string, message: string): Promise<unknown>;
  subscribe(channel: string): Promise<unknown>;
  unsubscribe(channel: string): Promise<unknown>;
  quit(): Promise<unknown>;
  disconnect(): void;
  status: string;
}

type RedisConstructor = new (url: string, options: Record<string, unknown>) => RedisLike;

const PREFIX = 'chat:';

/** Redis pub/sub between processes. Create it with {@link RedisBus.connect}. */
export class RedisBus implements ChatBus {
  /** This process, so its own lines are not delivered twice. */
  readonly #origin = randomUUID();
  readonly #pub: RedisLike;
  readonly #sub: RedisLike;
  readonly #log: (line: string) => void;
  /** The rooms watched, to subscribe again what failed while Redis was away. */
  readonly #rooms = new Set<string>();
  #down = false;
  #closed = false;

  private constructor(pub: RedisLike, sub: RedisLike, onRemote: RemoteLine, log: (line: string) => void) {
    this.#pub = pub;
    this.#sub = sub;
    this.#log = log;
    sub.on('message', (channel: string, message: string) => {
      if (!channel.startsWith(PREFIX)) return;
      let parsed: { o?: unknown; l?: unknown };
      try {
        parsed = JSON.parse(message) as { o?: unknown; l?: unknown };
      } catch {
        return; // not one of ours
      }
      if (parsed.o === this.#origin || typeof parsed.l !== 'string') return;
      onRemote(channel.slice(PREFIX.length), parsed.l);
    });
    for (const client of [pub, sub]) {
      // ioredis emits 'error' on every failed reconnect attempt: one line per outage is enough.
      client.on('error', () => this.#wentDown());
      client.on('close', () => this.#wentDown());
      client.on('ready', () => this.#cameBack());
    }
    sub.on('ready', () => {
      for (const room of this.#rooms) this.watch(room);
    });
  }

  /**
   * Connects to `url` (`redis://host:port`). Resolves once both connections are ready;
   * rejects when Redis cannot be reached at start (a wrong URL should not start a chat
   * that silently spans nothing), or when ioredis is not installed.
   */
  static async connect(url: string, onRemote: RemoteLine, log: (line: string) => void = console.error): Promise<RedisBus> {
    let Redis: RedisConstructor;
    try {
      const mod = (await import('ioredis')) as unknown as { Redis?: RedisConstructor; default?: RedisConstructor };
      Redis = (mod.Redis ?? mod.default)!;
    } catch (err) {
      throw new Error(`a Redis URL needs the optional dependency ioredis (npm install ioredis): ${(err as Error).message}`, { cause: err });
    }
    const options = {
      // Fail fast while Redis is away instead of replaying stale lines later.
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      // Reconnect forever, at most every 2 s.
      retryStrategy: (times: number) => Math.min(times * 100, 2000),
      lazyConnect: true,
    };
    const pub = new Redis(url, options);
    const sub = new Redis(url, options);
    try {
      await Promise.all([(pub as unknown as { connect(): Promise<void> }).connect(), (sub as unknown as { connect(): Promise<void> }).connect()]);
    } catch (err) {
      pub.disconnect();
      sub.disconnect();
      throw new Error(`cannot reach Redis at ${url}: ${(err as Error).message}`, { cause: err });
    }
    return new RedisBus(pub, sub, onRemote, log);
  }

  publish(room: string, line: string): void {
    if (this.#closed || this.#pub.status !== 'ready') return;
    this.#pub.publish(PREFIX + room, JSON.stringify({ o: this.#origin, l: line })).catch(() => this.#wentDown());
  }

  watch(room: string): void {
    this.#rooms.add(room);
    // ioredis remembers subscriptions and renews them after a reconnect.
    this.#sub.subscribe(PREFIX + room).catch(() => this.#wentDown());
  }

  unwatch(room: string): void {
    this.#rooms.delete(room);
    this.#sub.unsubscribe(PREFIX + room).catch(() => this.#wentDown());
  }

  #wentDown(): void {
    if (this.#closed || this.#down) return;
    this.#down = true;
    this.#log('redis: connection lost; chat goes on within this process; reconnecting');
  }

  #cameBack(): void {
    if (this.#closed || !this.#down || this.#pub.status !== 'ready' || this.#sub.status !== 'ready') return;
    this.#down = false;
    this.#log('redis: reconnected; rooms span processes again');
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await Promise.all([this.#pub, this.#sub].map((c) => c.quit().catch(() => c.disconnect())));
  }
}
