/**
 * Shared helpers of the Fastify adapter tests: log capture, an upstream server, a
 * client agent.
 */
import http from 'node:http';
import { Writable } from 'node:stream';
import Fastify, { type FastifyInstance } from 'fastify';
import { Agent } from 'undici';
import { createLogger, type ExceptionContext, type Logger, type Loop } from '../../src/index.ts';

/** Lines written by a Fastify (pino) logger, parsed. */
export interface PinoLine {
  level: number;
  msg: string;
  err?: { message: string; type: string };
  [key: string]: unknown;
}

/** A Fastify app whose log lines (info and above) are kept in `lines`. */
export function appWithLog(options: Record<string, unknown> = {}): { app: FastifyInstance; lines: PinoLine[] } {
  const lines: PinoLine[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const l of chunk.toString().split('\n')) if (l.trim()) lines.push(JSON.parse(l) as PinoLine);
      cb();
    },
  });
  const app = Fastify({ logger: { level: 'info', stream }, ...options });
  return { app, lines };
}

/** A protoloop logger that keeps what it writes. */
export function captureLogger(): { logger: Logger; text: () => string } {
  let out = '';
  const logger = createLogger({ level: 'debug', stream: { write: (s: string) => (out += s) } });
  return { logger, text: () => out };
}

/** Routes every context the loop's exception handler gets into an array. */
export function captureExceptions(loop: Loop): ExceptionContext[] {
  const seen: ExceptionContext[] = [];
  loop.setExceptionHandler((_l, ctx) => seen.push(ctx));
  return seen;
}

/**
 * A plain HTTP server on 127.0.0.1 standing for an upstream service: `/slow` answers
 * after `delay` ms (or never, with `delay` -1); `aborted` counts the requests whose
 * client went away before the answer.
 */
export async function startUpstream(delay = -1): Promise<{ url: string; aborted: () => number; started: () => number; close: () => Promise<void> }> {
  let aborted = 0;
  let started = 0;
  const server = http.createServer((req, res) => {
    started++;
    const timer = delay >= 0 ? setTimeout(() => res.end('upstream answer'), delay) : null;
    res.on('close', () => {
      if (timer) clearTimeout(timer);
      if (!res.writableEnded) aborted++;
    });
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.write('first chunk ');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  return {
    url: `http://127.0.0.1:${port}`,
    aborted: () => aborted,
    started: () => started,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** An undici agent for one test (closed by the test). */
export function agent(): Agent {
  return new Agent({ keepAliveTimeout: 10_000, connections: 600 });
}


export { pollUntil } from '../helpers.ts';
