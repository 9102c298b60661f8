/**
 * A command runner over WebSocket: a client names a whitelisted program, the server
 * runs it (no shell, ever) and streams its output back live.
 *
 *   node examples/servers/runner.ts [--host 127.0.0.1] [--port 8891] [--time-limit 10000] [--output-limit 1048576]
 *
 * Prints `listening on HOST:PORT` (port 0 picks a free one); SIGINT or SIGTERM stop it
 * cleanly: stop accepting, stop every child, close the clients (1001), exit 0.
 *
 * Protocol: JSON text messages. A client sends
 *   {"id": 1, "cmd": "seq", "args": ["1", "5"]}
 * where `id` (a string or a number) names the run in every reply, `cmd` is one of
 * echo, ls, date, uptime, sleep, seq, and `args` (optional) holds at most 64 strings
 * of at most 1024 characters each. The server answers, for that id:
 *   {"id": 1, "started": {"pid": 4242}}
 *   {"id": 1, "stream": "stdout", "data": "1\n2\n"}    output as it comes, in pieces
 *   ...                                                 of at most 64 KiB
 *   {"id": 1, "error": "output limit", "limit": N}     only when the output limit is hit
 *   {"id": 1, "exit": {"returncode": 0, "signal": null, "timedOut": false}}
 * The pieces follow the child's writes, not its lines (one message per 64 KiB read
 * keeps the cost per byte low): join the `data` of one stream to get its text; a
 * piece never splits a UTF-8 character.
 * A request that cannot run gets `{"id"?, "error": "..."}` and nothing else; the
 * connection stays usable. Several runs may go at once (at most 8 per connection).
 *
 * Limits of one run: `--time-limit` ms (SIGTERM, then SIGKILL 2 s later; the exit
 * says `timedOut`), `--output-limit` bytes of stdout and stderr together (past it the
 * child is SIGKILLed and told `output limit`). Backpressure: while the client's write
 * buffer is above the high-water mark the server stops reading the children's pipes,
 * so they block in write() instead of filling the server's memory. A client that goes
 * away has its runs cancelled: their children are stopped (SIGTERM, SIGKILL after 2 s).
 *
 * The children run with a fixed, minimal environment. `ls` lists what the server's
 * user can read: put a real deployment behind authentication.
 */
import { StringDecoder } from 'node:string_decoder';
import { parseArgs } from 'node:util';
import {
  CancelledError,
  DEVNULL,
  Event,
  InvalidArgumentError,
  MessageProtocol,
  PIPE,
  SubprocessError,
  createSubprocessExec,
  getRunningLoop,
  run,
  taskGroup,
  wait,
  type Process,
  type StreamReader,
  type Task,
  type WebSocketTransport,
} from '../../src/index.ts';
import { LIMIT_ARGS, limitsFromArgs, untilSignal, webSocketLimits, type ServeOptions, type Served } from './_served.ts';

/** Options of the command runner. */
export interface RunnerServeOptions extends ServeOptions {
  /** How long one run may take, ms. Default 10 000. */
  timeLimit?: number;
  /** How many bytes of output (stdout and stderr together) one run may produce. Default 1 MiB. */
  outputLimit?: number;
}

type Id = string | number;

/** The programs a client may run, each with a check of its arguments (an error message, or null). */
type ArgsCheck = (args: string[]) => string | null;
const COMMANDS: ReadonlyMap<string, ArgsCheck> = new Map<string, ArgsCheck>([
  ['echo', noCheck],
  ['ls', noCheck],
  // Not -s/--set (root could change the clock) nor -f/-r (they read files).
  ['date', (args) => (args.every((a) => DATE_ARG.test(a)) ? null : 'date takes only +FORMAT, -u, --utc, -R, -I[SPEC], --iso-8601[=SPEC], --rfc-3339=SPEC')],
  ['uptime', noCheck],
  ['sleep', noCheck],
  ['seq', noCheck],
]);
const DATE_ARG = /^(\+.*|-u|--utc|--universal|-R|--rfc-email|-I(date|hours|minutes|seconds|ns)?|--iso-8601(=(date|hours|minutes|seconds|ns))?|--rfc-3339=(date|seconds|ns))$/s;
const MAX_ARGS = 64;
const MAX_ARG_LENGTH = 1024;
const MAX_ID_LENGTH = 128;
/** Runs one connection may have going at once. */
const MAX_RUNS = 8;
/** Between SIGTERM and SIGKILL when a run is stopped (time limit, client gone, shutdown), ms. */
const GRACE = 2000;
/** Bytes read from a pipe at a time. */
const READ_SIZE = 64 * 1024;
/** The children's whole environment: nothing of the server's leaks into them. */
const CHILD_ENV = { PATH: '/usr/local/bin:/usr/bin:/bin', LANG: 'C.UTF-8' };

function noCheck(): null {
  return null;
}

function positive(value: number | undefined, fallback: number, what: string): number {
  const n = value ?? fallback;
  if (!(Number.isSafeInteger(n) && n > 0)) throw new InvalidArgumentError(`runner: ${what} must be a positive integer, got ${String(value)}`);
  return n;
}

/** What a valid request asks for. */
interface Request {
  id: Id;
  cmd: string;
  args: string[];
}

/** Checks one client message; returns the request, or the error reply. */
function parseRequest(text: string): Request | { id?: Id; error: string } {
  let msg: unknown;
  try {
    msg = JSON.parse(text);
  } catch (e) {
    return { error: `bad JSON: ${(e as Error).message}` };
  }
  if (msg === null || typeof msg !== 'object' || Array.isArray(msg)) return { error: 'a request is an object: {"id": 1, "cmd": "echo", "args": ["hi"]}' };
  const { id, cmd, args = [] } = msg as Record<string, unknown>;
  if (!((typeof id === 'string' && id.length > 0 && id.length <= MAX_ID_LENGTH) || (typeof id === 'number' && Number.isFinite(id)))) {
    return { error: `a request needs an "id": a number or a string of 1 to ${MAX_ID_LENGTH} characters` };
  }
  const check = typeof cmd === 'string' ? COMMANDS.get(cmd) : undefined;
  if (check === undefined) return { id, error: `unknown command ${JSON.stringify(cmd)}: use one of ${[...COMMANDS.keys()].join(', ')}` };
  if (!Array.isArray(args) || args.length > MAX_ARGS) return { id, error: `"args" must be an array of at most ${MAX_ARGS} strings` };
  for (const a of args as unknown[]) {
    if (typeof a !== 'string' || a.length > MAX_ARG_LENGTH || a.includes('\0')) return { id, error: `each argument must be a string of at most ${MAX_ARG_LENGTH} characters, without NUL` };
  }
  const why = check(args as string[]);
  if (why !== null) return { id, error: why };
  return { id, cmd: cmd as string, args: args as string[] };
}

/** What the connections of one server share. */
interface RunnerContext {
  readonly timeLimit: number;
  readonly outputLimit: number;
  readonly log: (line: string) => void;
  readonly connections: Set<RunnerConnection>;
  /** Set by close(): no new runs. */
  closing: boolean;
}

/** One client: its requests, its runs, and the flow control of its socket. */
class RunnerConnection extends MessageProtocol {
  readonly ctx: RunnerContext;
  /** Set while the client keeps up; cleared by pauseWriting(): the pumps stop reading pipes. */
  readonly writable = new Event();
  readonly runs = new Map<Id, Task<void>>();
  #transport: WebSocketTransport | null = null;

  constructor(ctx: RunnerContext) {
    super();
    this.ctx = ctx;
    this.writable.set();
  }

  override connectionMade(transport: WebSocketTransport): void {
    this.#transport = transport;
    this.ctx.connections.add(this);
  }

  override messageReceived(data: Buffer | string, isBinary: boolean): void {
    if (isBinary) {
      this.send({ error: 'send requests as JSON text messages' });
      return;
    }
    const req = parseRequest(data as string);
    if ('error' in req) {
      this.send(req);
      return;
    }
    if (this.ctx.closing) {
      this.send({ id: req.id, error: 'the server is shutting down' });
      return;
    }
    if (this.runs.has(req.id)) {
      this.send({ id: req.id, error: `run ${JSON.stringify(req.id)} is still going: use another id` });
      return;
    }
    if (this.runs.size >= MAX_RUNS) {
      this.send({ id: req.id, error: `too many runs at once (at most ${MAX_RUNS})` });
      return;
    }
    const task = getRunningLoop().createTask(() => execute(this, req), { name: `run ${JSON.stringify(req.id)}: ${req.cmd}` });
    this.runs.set(req.id, task);
    task.addDoneCallback(() => {
      this.runs.delete(req.id);
      // Retrieve the outcome: a cancelled run is expected, anything else is logged.
      const exc = task.cancelled() ? null : task.exception();
      if (exc != null) this.ctx.log(`runner: run ${JSON.stringify(req.id)} failed: ${String(exc)}`);
    });
  }

  /** Sends `msg` as JSON unless the client is gone. */
  send(msg: object): void {
    const t = this.#transport;
    if (t !== null && !t.isClosing()) t.send(JSON.stringify(msg));
  }

  /** Sends a piece of a child's output. */
  sendOutput(id: Id, stream: 'stdout' | 'stderr', data: string): void {
    if (data.length > 0) this.send({ id, stream, data });
  }

  /** Cancels every run (once each): their children are stopped. */
  cancelRuns(why: string): void {
    for (const task of this.runs.values()) if (task.cancelling() === 0) task.cancel(why);
  }

  override pauseWriting(): void {
    this.writable.clear();
  }

  override resumeWriting(): void {
    this.writable.set();
  }

  override connectionLost(): void {
    this.#transport = null;
    this.ctx.connections.delete(this);
    this.cancelRuns('the client went away');
  }
}

/** How much output a run may still send, shared by its two pumps. */
interface Budget {
  left: number;
  exceeded: boolean;
}

/** One run: start the child, stream its output, report how it ended. */
async function execute(conn: RunnerConnection, req: Request): Promise<void> {
  const { id } = req;
  const { timeLimit, outputLimit, log } = conn.ctx;
  let proc: Process;
  try {
    proc = await createSubprocessExec(req.cmd, req.args, {
      stdin: DEVNULL,
      stdout: PIPE,
      stderr: PIPE,
      env: CHILD_ENV,
      timeout: timeLimit,
      killSignal: 'SIGTERM',
      forceKillAfterDelay: GRACE,
    });
  } catch (e) {
    if (!(e instanceof SubprocessError)) throw e;
    conn.send({ id, error: e.message });
    return;
  }
  conn.send({ id, started: { pid: proc.pid } });
  log(`runner: run ${JSON.stringify(id)}: ${[req.cmd, ...req.args].join(' ')} (pid ${proc.pid})`);
  const budget: Budget = { left: outputLimit, exceeded: false };
  let cancelled: CancelledError | null = null;
  try {
    await taskGroup((tg) => {
      tg.createTask(() => pump(conn, id, proc, proc.stdout!, 'stdout', budget), { name: `run ${JSON.stringify(id)} stdout` });
      tg.createTask(() => pump(conn, id, proc, proc.stderr!, 'stderr', budget), { name: `run ${JSON.stringify(id)} stderr` });
    });
    await proc.wait();
  } catch (e) {
    if (!(e instanceof CancelledError)) {
      conn.send({ id, error: 'internal error' });
      throw e;
    }
    cancelled = e;
  } finally {
    // Stops a child still running (SIGTERM, SIGKILL after GRACE) and waits until it is reaped.
    await proc[Symbol.asyncDispose]();
  }
  const exit = { returncode: proc.returncode, signal: proc.signal, timedOut: proc.timedOut };
  if (cancelled !== null) conn.send({ id, error: `cancelled: ${cancelled.message}` });
  conn.send({ id, exit });
  log(`runner: run ${JSON.stringify(id)} ended: returncode ${String(exit.returncode)}${exit.timedOut ? ' (time limit)' : ''}${cancelled !== null ? ` (${cancelled.message})` : ''}`);
  if (cancelled !== null) throw cancelled;
}

/** Streams one pipe to the client, reading only while the client keeps up. */
async function pump(conn: RunnerConnection, id: Id, proc: Process, reader: StreamReader, stream: 'stdout' | 'stderr', budget: Budget): Promise<void> {
  // Decodes per stream, so a character split between two reads stays whole.
  const decoder = new StringDecoder('utf8');
  for (;;) {
    // Not reading lets the pipe fill up: the child blocks in write() until the client catches up.
    if (!conn.writable.isSet()) await conn.writable.wait();
    const chunk = await reader.read(READ_SIZE);
    if (chunk.length === 0) break;
    if (budget.exceeded) continue; // drain what the killed child left in the pipe
    const part = chunk.length > budget.left ? chunk.subarray(0, budget.left) : chunk;
    budget.left -= part.length;
    conn.sendOutput(id, stream, decoder.write(part));
    if (part !== chunk) {
      budget.exceeded = true;
      proc.kill();
      conn.send({ id, error: 'output limit', limit: conn.ctx.outputLimit });
    }
  }
  const rest = decoder.end();
  if (!budget.exceeded) conn.sendOutput(id, stream, rest);
}

/**
 * Starts the command runner on the running loop. Throws InvalidArgumentError for a
 * bad `timeLimit` or `outputLimit`.
 */
export async function serve(options: RunnerServeOptions = {}): Promise<Served> {
  const ctx: RunnerContext = {
    timeLimit: positive(options.timeLimit, 10_000, 'timeLimit'),
    outputLimit: positive(options.outputLimit, 1024 * 1024, 'outputLimit'),
    log: options.log ?? console.error,
    connections: new Set(),
    closing: false,
  };
  const server = await getRunningLoop().createWebSocketServer(() => new RunnerConnection(ctx), {
    host: options.host ?? '127.0.0.1',
    port: options.port ?? 8891,
    maxPayload: 256 * 1024,
    closeTimeout: 2000,
    ...webSocketLimits(options),
  });
  const { address, port } = server.address()!;

  async function shutdown(): Promise<void> {
    server.close();
    ctx.closing = true;
    // Stop the children first, so that each client still hears how its runs ended.
    const runs = [...ctx.connections].flatMap((c) => {
      c.cancelRuns('the server is shutting down');
      return [...c.runs.values()];
    });
    if (runs.length > 0) await wait(runs);
    const { aborted } = await server.shutdown({ closeClients: true, timeout: 3000 });
    if (aborted > 0) ctx.log(`runner: ${aborted} client(s) aborted`);
  }
  let closing: Promise<void> | null = null;
  return {
    name: 'websocket command runner',
    url: server.url!,
    host: address,
    port,
    close: () => (closing ??= shutdown()),
  };
}

if (import.meta.main) {
  const { values } = parseArgs({
    options: {
      host: { type: 'string', default: '127.0.0.1' },
      port: { type: 'string', default: '8891' },
      'time-limit': { type: 'string', default: '10000' },
      'output-limit': { type: 'string', default: String(1024 * 1024) },
      ...LIMIT_ARGS,
    },
  });
  const port = Number(values.port);
  const timeLimit = Number(values['time-limit']);
  const outputLimit = Number(values['output-limit']);
  if (!(Number.isInteger(port) && port >= 0 && port <= 65535) || !(Number.isSafeInteger(timeLimit) && timeLimit > 0) || !(Number.isSafeInteger(outputLimit) && outputLimit > 0)) {
    console.error('--port must be 0-65535; --time-limit (ms) and --output-limit (bytes) must be positive integers');
    process.exit(2);
  }
  await run(
    async () => {
      const server = await serve({ host: values.host, port, timeLimit, outputLimit, ...limitsFromArgs(values) });
      const stop = untilSignal(); // handlers in place before we say we listen
      console.log(`listening on ${server.host}:${server.port}`);
      const signal = await stop;
      console.error(`${signal}: shutting down`);
      await server.close();
    },
    { handleSigint: false },
  );
}
