/**
 * The `protoloop` logger: pino-compatible, injectable, readable by default.
 * @module
 */
import { format, inspect } from 'node:util';
import { isInternalFrame, relativePath } from './internal.ts';

/** Log levels, lowest first. */
export type LogLevel = 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal' | 'silent';

type LogFn = (objOrMsg: unknown, msg?: string, ...args: unknown[]) => void;

/**
 * What protoloop needs of a logger: pino's method shapes (`logger.error(obj, msg)` or
 * `logger.error(msg)`). A pino or Fastify logger can be passed as is; protoloop uses
 * `child({ name: 'protoloop' })` when the logger has it.
 */
export interface Logger {
  trace?: LogFn;
  debug: LogFn;
  info: LogFn;
  warn: LogFn;
  error: LogFn;
  level?: string;
  child?: (bindings: Record<string, unknown>) => Logger;
}

const LEVELS: Record<LogLevel, number> = { trace: 10, debug: 20, info: 30, warn: 40, error: 50, fatal: 60, silent: Infinity };

/** Options of {@link createLogger}. */
export interface CreateLoggerOptions {
  /** Lowest level written. Default `'info'` (`'debug'` when the loop is in debug mode). */
  level?: LogLevel;
  /** Where lines go. Default `process.stderr`. */
  stream?: { write(chunk: string): unknown };
  /** Logger name printed on each line. Default `'protoloop'`. */
  name?: string;
}

/**
 * The default logger: one readable line per entry (`LEVEL name: message`), then any
 * context lines indented below it, on stderr. `err` in the object argument is
 * printed with its stack.
 */
export function createLogger(options: CreateLoggerOptions = {}): Logger {
  const name = options.name ?? 'protoloop';
  const stream = options.stream ?? process.stderr;
  const logger: Logger & { level: LogLevel } = {
    level: options.level ?? 'info',
    trace: make('trace'),
    debug: make('debug'),
    info: make('info'),
    warn: make('warn'),
    error: make('error'),
    child: (bindings) => createLogger({ level: logger.level, stream, name: typeof bindings.name === 'string' ? bindings.name : name }),
  };
  function make(level: LogLevel): LogFn {
    return (objOrMsg, msg, ...args) => {
      if (LEVELS[level] < LEVELS[logger.level]) return;
      let text: string;
      let err: unknown;
      if (typeof objOrMsg === 'string') {
        text = format(objOrMsg, ...(msg === undefined ? args : [msg, ...args]));
      } else {
        if (objOrMsg instanceof Error) err = objOrMsg;
        else if (objOrMsg !== null && typeof objOrMsg === 'object') err = (objOrMsg as { err?: unknown }).err;
        text = msg === undefined ? (err instanceof Error ? err.message : '') : format(msg, ...args);
      }
      let out = `${level.toUpperCase()} ${name}: ${text.replaceAll('\n', '\n  ')}\n`;
      if (err !== undefined && !text.includes(errorText(err))) out += indent(errorText(err)) + '\n';
      stream.write(out);
    };
  }
  return logger;
}

function errorText(err: unknown): string {
  if (err instanceof Error) return hideMachinery(inspect(err));
  return String(err);
}

/**
 * Drops, from each stack of an error (its own, its causes'), the frames of protoloop
 * and of Node's internals below the last frame of the user's code: the loop machinery
 * that ran the code says nothing to the reader. A stack made only of such frames (an
 * error raised by protoloop itself) is kept whole.
 */
function hideMachinery(text: string): string {
  const out: string[] = [];
  let run: string[] = [];
  const flush = (): void => {
    let end = run.length;
    while (end > 0 && isInternalFrame(run[end - 1]!)) end--;
    for (const frame of end === 0 ? run : run.slice(0, end)) out.push(relativePath(frame));
    run = [];
  };
  for (const line of text.split('\n')) {
    if (/^\s+at /.test(line)) {
      run.push(line);
    } else {
      flush();
      out.push(line);
    }
  }
  flush();
  return out.join('\n');
}

function indent(s: string): string {
  return s.split('\n').map((l) => `  ${l}`).join('\n');
}

/** Adapts an injected logger: a child named `protoloop`, at debug level in debug mode. @internal */
export function adoptLogger(logger: Logger | undefined, debug: boolean): Logger {
  if (logger === undefined) return createLogger({ level: debug ? 'debug' : 'info' });
  const child = typeof logger.child === 'function' ? logger.child({ name: 'protoloop' }) : logger;
  if (debug) setLevel(child, 'debug');
  return child;
}

/** Sets a logger's level when it has a settable one. @internal */
export function setLevel(logger: Logger, level: LogLevel): void {
  try {
    if ('level' in logger) logger.level = level;
  } catch {
    // a logger with a read-only level keeps its own
  }
}
