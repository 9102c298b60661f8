/**
 * HTTP next to everything else on one loop: a Fastify app whose handlers are loop tasks.
 *
 *   node examples/servers/http.ts [--host 127.0.0.1] [--port 8080]
 *
 * Routes (all on the one port):
 *   GET /proxy?ms=500  asks an upstream server (a second app this script starts on
 *                      127.0.0.1) with fetch, passing request.signal: when the client
 *                      goes away, the upstream request stops, and the upstream sees it.
 *   GET /run?n=5       runs a child process and streams its output as it comes; the
 *                      child is stopped if the client goes away.
 *   WS  /chat          a chat room: every message goes to everyone connected.
 *   GET /tasks         the loop's tasks and counters, as JSON.
 *
 * Prints `listening on http://HOST:PORT` (port 0 picks a free one). SIGINT or SIGTERM
 * shut it down cleanly: no new connections, in-flight requests get up to 5 s, chat
 * clients are closed with 1001, the child processes are stopped. `serve()` starts the
 * same app (and its upstream) on the running loop.
 */
import { Readable } from 'node:stream';
import { parseArgs } from 'node:util';
import Fastify, { type FastifyInstance } from 'fastify';
import { MessageProtocol, PIPE, allTasks, createSubprocessExec, getRunningLoop, run, sleep, type Process, type WebSocketTransport } from '../../src/index.ts';
import { protoloopFastify, serveFastify, type FastifyServer } from '../../src/fastify/index.ts';
import { untilSignal, type ServeOptions, type Served } from './_served.ts';

// --------------------------------------------------------------- upstream

/** The "remote" service: answers /slow after `ms` milliseconds of (cancellable) work. */
async function startUpstream(log: (line: string) => void): Promise<FastifyServer> {
  const app = Fastify();
  await app.register(protoloopFastify);
  app.get('/slow', async (request) => {
    const ms = Math.min(Number((request.query as { ms?: string }).ms ?? 500) || 0, 60_000);
    request.signal.addEventListener('abort', () => log(`upstream: ${request.task?.getName()} cancelled (${String(request.signal.reason)})`));
    await sleep(ms);
    return { waitedMs: ms };
  });
  return serveFastify(app, { host: '127.0.0.1', port: 0 });
}

// ------------------------------------------------------------------ chat

/** The chat room of one app: everyone connected to its /chat. */
class ChatRoom {
  readonly members = new Set<ChatMember>();
  #counter = 0;

  nextName(): string {
    return `guest-${++this.#counter}`;
  }

  broadcast(line: string): void {
    for (const m of this.members) m.send(line);
  }
}

/** A chat member: one WebSocket connection, a MessageProtocol. */
class ChatMember extends MessageProtocol {
  readonly #room: ChatRoom;
  readonly name: string;
  #transport: WebSocketTransport | null = null;

  constructor(room: ChatRoom) {
    super();
    this.#room = room;
    this.name = room.nextName();
  }

  override connectionMade(transport: WebSocketTransport): void {
    this.#transport = transport;
    this.#room.members.add(this);
    this.#room.broadcast(`* ${this.name} joined`);
  }

  override messageReceived(data: Buffer | string): void {
    this.#room.broadcast(`${this.name}: ${String(data).slice(0, 1000)}`);
  }

  override connectionLost(): void {
    this.#room.members.delete(this);
    this.#transport = null;
    this.#room.broadcast(`* ${this.name} left`);
  }

  send(line: string): void {
    // A member whose connection is closing (the server shuts down) hears nothing more.
    const t = this.#transport;
    if (t !== null && !t.isClosing()) t.send(line);
  }
}

// ----------------------------------------------------------- subprocesses

/** The child: prints `n` numbered lines, one every 200 ms. */
const CHILD = 'let i = 0; const n = Number(process.argv[1]); const t = setInterval(() => { console.log(`line ${++i} of ${n}`); if (i >= n) clearInterval(t); }, 200);';

/** The child's stdout, line by line, then its exit status; stops the child if the reader quits early. */
async function* output(proc: Process): AsyncGenerator<Buffer | string> {
  try {
    for await (const line of proc.stdout!) yield line;
    yield `exit status ${await proc.wait()}\n`;
  } finally {
    if (proc.returncode === null) proc.kill();
  }
}

// -------------------------------------------------------------------- app

function routes(app: FastifyInstance, upstream: FastifyServer, room: ChatRoom): void {
  const loop = getRunningLoop();

  app.get('/proxy', async (request) => {
    const ms = Number((request.query as { ms?: string }).ms ?? 500) || 0;
    // request.signal aborts when our client leaves: fetch then drops the upstream request.
    const res = await fetch(`${upstream.url}/slow?ms=${ms}`, { signal: request.signal });
    return { upstream: (await res.json()) as unknown, status: res.status };
  });

  app.get('/run', async (request, reply) => {
    const n = Math.max(1, Math.min(Number((request.query as { n?: string }).n ?? 5) || 5, 50));
    // The signal stops the child when the client leaves, even while its output is streaming.
    const proc = await createSubprocessExec(process.execPath, ['-e', CHILD, String(n)], { stdout: PIPE, signal: request.signal, timeout: 30_000 });
    reply.type('text/plain; charset=utf-8');
    return Readable.from(output(proc));
  });

  app.get('/tasks', async () => ({
    tasks: [...allTasks(loop)].map((t) => ({
      name: t.getName(),
      ageMs: Math.round(loop.time() - t.createdAt),
      awaiting: t.awaiting()?.toString() ?? null,
    })),
    loop: loop.stats(),
    http: app.protoloop.stats(),
    chat: room.members.size,
  }));
}

/** Starts the app (and the upstream it proxies to, on a free port) on the running loop. */
export async function serve(options: ServeOptions = {}): Promise<Served> {
  const log = options.log ?? console.error;
  const upstream = await startUpstream(log);
  try {
    const app = Fastify();
    await app.register(protoloopFastify, { closeTimeout: 5000 });
    const room = new ChatRoom();
    routes(app, upstream, room);
    await app.protoloop.websocket('/chat', () => new ChatMember(room));
    const server = await serveFastify(app, { host: options.host ?? '127.0.0.1', port: options.port ?? 8080 });
    const { address, port } = server.address()!;
    let closing: Promise<void> | null = null;
    return {
      name: 'http (fastify)',
      url: server.url!,
      host: address,
      port,
      // In-flight requests get up to 5 s (the plugin's closeTimeout), chat clients 1001.
      close: () =>
        (closing ??= (async () => {
          await server.close();
          await server.waitClosed();
          await upstream.close();
          await upstream.waitClosed();
        })()),
    };
  } catch (e) {
    await upstream.close();
    await upstream.waitClosed();
    throw e;
  }
}

if (import.meta.main) {
  const { values } = parseArgs({ options: { host: { type: 'string', default: '127.0.0.1' }, port: { type: 'string', default: '8080' } } });
  await run(
    async () => {
      // Notes go to stdout here, as the tests of this example expect.
      const server = await serve({ host: values.host, port: Number(values.port), log: console.log });
      const stop = untilSignal(); // handlers in place before we say we listen
      console.log(`listening on ${server.url}`);
      console.log(`${await stop}: shutting down`);
      await server.close();
      console.log('bye');
    },
    { handleSigint: false },
  );
}
