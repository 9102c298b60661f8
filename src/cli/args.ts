/**
 * The command line of `protoloop`, parsed with `node:util` parseArgs. Every mistake
 * becomes a {@link UsageError}: one line naming what was wrong, then the usage of the
 * command it was meant for (exit code 2).
 * @module
 */
import { parseArgs, type ParseArgsConfig } from 'node:util';

/** What the user asked for, checked. */
export type Command =
  | { kind: 'help'; topic: CommandName | undefined }
  | { kind: 'version' }
  | { kind: 'inspect'; cmd: 'ps' | 'pstree' | 'stats'; pid: number; json: boolean }
  | { kind: 'top'; pid: number; intervalMs: number; count: number | undefined; json: boolean }
  | { kind: 'serve'; example: string; host: string | undefined; port: number | undefined; debug: boolean; inspect: boolean; workers: number | 'auto' | undefined; limits: ServerLimitFlags };

/** The server limits `serve` may set (absent: the server's own defaults). */
export interface ServerLimitFlags {
  maxConnections?: number;
  idleTimeout?: number;
  handshakeTimeout?: number;
}

/** The examples whose servers take the limits (http is Fastify's: its timeouts are its own). */
const NO_LIMITS = new Set(['http']);

export type CommandName = 'ps' | 'pstree' | 'stats' | 'top' | 'serve';

const USAGES: Record<CommandName, string> = {
  ps: 'protoloop ps <pid> [--json]          every task of a running protoloop process',
  pstree: 'protoloop pstree <pid> [--json]      the same, as a tree of who awaits whom',
  stats: 'protoloop stats <pid> [--json]       loop lag, rates, open resources',
  top: 'protoloop top <pid> [--interval MS] [--count N] [--json]   the same, live (q or Ctrl-C quits)',
  serve: 'protoloop serve <example> [--host HOST] [--port PORT] [--workers N|auto] [--max-connections N] [--idle-timeout MS] [--handshake-timeout MS] [--debug] [--inspect]',
};

/** The usage text of one command, or of all of them. */
export function usage(topic?: CommandName): string {
  if (topic !== undefined) {
    const more =
      topic === 'top'
        ? '\n\nRefreshes the stats of a running protoloop process in place every --interval ms (default 1000):\nloop lag, callbacks/s, task steps/s, tasks by state, open resources, executors.\n--count N prints N frames and exits; --json prints one JSON object per line.\nThe process must run with inspection on (PROTOLOOP_INSPECT=1 or run(main, { inspect: true })).'
        : topic === 'serve'
        ? '\n\nRuns one of the example servers and prints its pid. --port 0 picks a free port;\n--debug turns on debug mode; --inspect lets `protoloop ps <pid>` look inside.\n--workers N (or auto, one per core) runs N worker processes on the port (serveWorkers()).\n--max-connections, --idle-timeout and --handshake-timeout (ms; 0 turns a timeout off) set the\nserver limits (defaults: 10000 connections, 300000 ms idle for TCP, 10000 ms handshakes).'
        : '\n\nThe process must run with inspection on (PROTOLOOP_INSPECT=1 or run(main, { inspect: true }))\nand belong to the same user. --json prints the raw answer.';
    return `usage: ${USAGES[topic]}${more}`;
  }
  return [
    'usage:',
    ...Object.values(USAGES).map((u) => `  ${u}`),
    '  protoloop --version',
    '  protoloop <command> --help',
  ].join('\n');
}

/** A mistake on the command line: exit code 2, with the usage of `topic`. */
export class UsageError extends Error {
  readonly topic: CommandName | undefined;
  constructor(message: string, topic?: CommandName) {
    super(message);
    this.name = 'UsageError';
    this.topic = topic;
  }
}

const isCommand = (s: string | undefined): s is CommandName => s === 'ps' || s === 'pstree' || s === 'stats' || s === 'top' || s === 'serve';

function parseCount(raw: string | undefined, name: string, min: number): number | undefined {
  if (raw === undefined) return undefined;
  const n = Number(raw);
  if (!/^\d+$/.test(raw) || !Number.isSafeInteger(n) || n < min) throw new UsageError(`bad --${name} '${raw}': give a whole number >= ${min}`, 'top');
  return n;
}

/** parseArgs' own error, said in one line. */
function oneLine(err: unknown, topic: CommandName): UsageError {
  const e = err as { code?: string; message?: string };
  const quoted = /'([^']+)'/.exec(e.message ?? '')?.[1];
  if (e.code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION') return new UsageError(`unknown option ${quoted ?? ''}`.trim(), topic);
  if (e.code === 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE') return new UsageError(`option ${quoted?.split(' ')[0] ?? ''} needs a value`, topic);
  if (e.code === 'ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL') return new UsageError(`unexpected argument ${quoted ?? ''}`.trim(), topic);
  return new UsageError(String(e.message ?? err).split('\n')[0]!, topic);
}

type Values = Record<string, string | boolean | undefined>;

function parse(args: string[], options: NonNullable<ParseArgsConfig['options']>, topic: CommandName): { values: Values; positionals: string[] } {
  try {
    return parseArgs({ args, options: { ...options, help: { type: 'boolean', short: 'h' } }, allowPositionals: true, strict: true });
  } catch (err) {
    throw oneLine(err, topic);
  }
}

function parsePid(raw: string | undefined, topic: CommandName): number {
  if (raw === undefined) throw new UsageError('give the process id of a protoloop process', topic);
  const pid = Number(raw);
  if (!/^\d+$/.test(raw) || !Number.isSafeInteger(pid) || pid <= 0) throw new UsageError(`bad pid '${raw}': give a process id (a positive integer)`, topic);
  return pid;
}

function parseWorkers(raw: string | undefined): number | 'auto' | undefined {
  if (raw === undefined) return undefined;
  if (raw === 'auto') return 'auto';
  const n = Number(raw);
  if (!/^\d+$/.test(raw) || n < 1 || n > 1024) throw new UsageError(`bad --workers '${raw}': give a number of workers from 1 to 1024, or auto`, 'serve');
  return n;
}

function parseLimit(flag: string, raw: string | undefined, min: number): number | undefined {
  if (raw === undefined) return undefined;
  const n = Number(raw);
  if (!/^\d+$/.test(raw) || !Number.isSafeInteger(n) || n < min) throw new UsageError(`bad --${flag} '${raw}': give a whole number${min > 0 ? ` from ${min}` : ' (0 turns it off)'}`, 'serve');
  return n;
}

function parsePort(raw: string | undefined): number | undefined {
  if (raw === undefined) return undefined;
  const port = Number(raw);
  if (!/^\d+$/.test(raw) || port > 65535) throw new UsageError(`bad --port '${raw}': give a port number from 0 to 65535 (0 picks a free one)`, 'serve');
  return port;
}

/** Parses `argv` (without node and the script); throws {@link UsageError}. */
export function parseCommandLine(argv: string[], examples: readonly string[]): Command {
  const [first, ...rest] = argv;
  if (first === undefined) throw new UsageError('give a command');
  if (first === '--version' || first === '-v') return { kind: 'version' };
  if (first === '--help' || first === '-h') return { kind: 'help', topic: undefined };
  if (first === 'help') {
    const topic = rest[0];
    if (topic !== undefined && !isCommand(topic)) throw new UsageError(`unknown command '${topic}'`);
    return { kind: 'help', topic };
  }
  if (!isCommand(first)) throw new UsageError(first.startsWith('-') ? `unknown option ${first}` : `unknown command '${first}'`);
  if (first === 'serve') {
    const { values, positionals } = parse(
      rest,
      {
        host: { type: 'string' },
        port: { type: 'string' },
        workers: { type: 'string' },
        'max-connections': { type: 'string' },
        'idle-timeout': { type: 'string' },
        'handshake-timeout': { type: 'string' },
        debug: { type: 'boolean' },
        inspect: { type: 'boolean' },
      },
      'serve',
    );
    if (values.help === true) return { kind: 'help', topic: 'serve' };
    const [example, extra] = positionals;
    const choose = `choose one of: ${examples.join(', ') || '(no examples found)'}`;
    if (example === undefined) throw new UsageError(`give the example to serve; ${choose}`, 'serve');
    if (!examples.includes(example)) throw new UsageError(`unknown example '${example}'; ${choose}`, 'serve');
    if (extra !== undefined) throw new UsageError(`unexpected argument '${extra}'`, 'serve');
    if (values.host === '') throw new UsageError(`bad --host '': give a host name or address`, 'serve');
    const str = (k: string): string | undefined => (typeof values[k] === 'string' ? values[k] : undefined);
    const limits: ServerLimitFlags = {};
    const maxConnections = parseLimit('max-connections', str('max-connections'), 1);
    const idleTimeout = parseLimit('idle-timeout', str('idle-timeout'), 0);
    const handshakeTimeout = parseLimit('handshake-timeout', str('handshake-timeout'), 0);
    if (maxConnections !== undefined) limits.maxConnections = maxConnections;
    if (idleTimeout !== undefined) limits.idleTimeout = idleTimeout;
    if (handshakeTimeout !== undefined) limits.handshakeTimeout = handshakeTimeout;
    if (Object.keys(limits).length > 0 && NO_LIMITS.has(example)) {
      throw new UsageError(`the ${example} example is a Fastify app: its limits are Fastify's own (requestTimeout, connectionTimeout), not --max-connections/--idle-timeout/--handshake-timeout`, 'serve');
    }
    return {
      kind: 'serve',
      example,
      host: typeof values.host === 'string' ? values.host : undefined,
      port: parsePort(typeof values.port === 'string' ? values.port : undefined),
      debug: values.debug === true,
      inspect: values.inspect === true,
      workers: parseWorkers(typeof values.workers === 'string' ? values.workers : undefined),
      limits,
    };
  }
  if (first === 'top') {
    const { values, positionals } = parse(rest, { json: { type: 'boolean' }, interval: { type: 'string' }, count: { type: 'string' } }, 'top');
    if (values.help === true) return { kind: 'help', topic: 'top' };
    if (positionals.length > 1) throw new UsageError(`unexpected argument '${positionals[1]}'`, 'top');
    return {
      kind: 'top',
      pid: parsePid(positionals[0], 'top'),
      intervalMs: parseCount(typeof values.interval === 'string' ? values.interval : undefined, 'interval', 50) ?? 1000,
      count: parseCount(typeof values.count === 'string' ? values.count : undefined, 'count', 1),
      json: values.json === true,
    };
  }
  const { values, positionals } = parse(rest, { json: { type: 'boolean' } }, first);
  if (values.help === true) return { kind: 'help', topic: first };
  if (positionals.length > 1) throw new UsageError(`unexpected argument '${positionals[1]}'`, first);
  return { kind: 'inspect', cmd: first, pid: parsePid(positionals[0], first), json: values.json === true };
}
