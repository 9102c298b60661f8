#!/usr/bin/env node
/**
 * The `protoloop` command (`protoloop --help` lists the commands).
 *
 *   protoloop ps|pstree|stats <pid> [--json]   look inside a running protoloop process
 *   protoloop top <pid> [--interval MS] [--count N] [--json]   the same, live
 *   protoloop serve <example> [--host H] [--port P] [--workers N|auto] [--max-connections N] [--idle-timeout MS] [--handshake-timeout MS] [--debug] [--inspect]
 *
 * Exit codes: 0 done, 1 the command failed (no such process, no endpoint, a server that
 * could not start), 2 a mistake on the command line (one line saying what, then usage).
 * @module
 */
import { spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { constants } from 'node:os';
import { fileURLToPath } from 'node:url';
import { parseCommandLine, usage, UsageError, type Command } from './args.ts';
import { query } from './client.ts';
import { formatPs, formatPstree, formatStats } from './format.ts';
import { serveWorkers } from '../cluster/index.ts';
import { top } from './top.ts';

// From the sources (a clone) the examples are the .ts files; from dist/ (an installed
// package, where Node does not strip types) they are compiled to dist/examples/servers.
const fromSource = import.meta.url.endsWith('.ts');
const examplesDir = fileURLToPath(new URL(fromSource ? '../../examples/servers/' : '../examples/servers/', import.meta.url));
const exampleExt = fromSource ? '.ts' : '.js';

function examples(): string[] {
  if (!existsSync(examplesDir)) return [];
  return readdirSync(examplesDir)
    .filter((f) => f.endsWith(exampleExt) && !f.includes('client') && !f.startsWith('_'))
    .map((f) => f.slice(0, -exampleExt.length))
    .sort();
}

function version(): string {
  // src/cli/main.ts and dist/cli/main.js both sit two levels below package.json.
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

async function inspect(cmd: 'ps' | 'pstree' | 'stats', pid: number, json: boolean): Promise<number> {
  const answer = await query(pid, cmd);
  if (json) process.stdout.write(JSON.stringify(answer, null, 2) + '\n');
  else if (cmd === 'ps') process.stdout.write(formatPs(pid, answer.tasks) + '\n');
  else if (cmd === 'pstree') process.stdout.write(formatPstree(pid, answer.tasks) + '\n');
  else process.stdout.write(formatStats(answer) + '\n');
  return 0;
}

/** `serve --workers`: this process is the pool's primary; each worker runs the example's `serve()`. */
async function serveMany(c: Extract<Command, { kind: 'serve' }>, workers: number | 'auto'): Promise<number> {
  if (c.debug) process.env.PROTOLOOP_DEBUG = '1';
  const pool = await serveWorkers(`${examplesDir}${c.example}${exampleExt}`, {
    workers,
    ...(c.host !== undefined ? { host: c.host } : {}),
    ...(c.port !== undefined ? { port: c.port } : {}),
    inspect: c.inspect,
    serveOptions: { ...c.limits },
  });
  const pids = pool.workers().map((w) => w.pid).join(', ');
  const how = c.inspect ? `protoloop ps ${process.pid}` : `add --inspect to look inside with protoloop ps ${process.pid}`;
  process.stderr.write(`protoloop serve ${c.example}: primary pid ${process.pid}, workers ${pids} (${how})\n`);
  process.stdout.write(`listening on ${c.host ?? '127.0.0.1'}:${pool.port} with ${pool.workers().length} workers (${pool.portSharing})\n`);
  return await pool.done;
}

async function serve(c: Extract<Command, { kind: 'serve' }>): Promise<number> {
  if (c.workers !== undefined) return await serveMany(c, c.workers);
  const args = [`${examplesDir}${c.example}${exampleExt}`];
  if (c.host !== undefined) args.push('--host', c.host);
  if (c.port !== undefined) args.push('--port', String(c.port));
  if (c.limits.maxConnections !== undefined) args.push('--max-connections', String(c.limits.maxConnections));
  if (c.limits.idleTimeout !== undefined) args.push('--idle-timeout', String(c.limits.idleTimeout));
  if (c.limits.handshakeTimeout !== undefined) args.push('--handshake-timeout', String(c.limits.handshakeTimeout));
  const env = { ...process.env };
  if (c.debug) env.PROTOLOOP_DEBUG = '1';
  if (c.inspect) env.PROTOLOOP_INSPECT = '1';
  const child = spawn(process.execPath, args, { stdio: 'inherit', env });
  const forward = (sig: NodeJS.Signals): void => {
    child.kill(sig);
  };
  process.on('SIGINT', forward);
  process.on('SIGTERM', forward);
  return await new Promise<number>((resolve, reject) => {
    child.on('error', reject);
    child.on('spawn', () => {
      const how = c.inspect ? `protoloop ps ${child.pid}` : `add --inspect to look inside with protoloop ps ${child.pid}`;
      process.stderr.write(`protoloop serve ${c.example}: pid ${child.pid} (${how})\n`);
    });
    child.on('exit', (code, signal) => resolve(code ?? 128 + (signal === null ? 0 : constants.signals[signal])));
  });
}

async function main(argv: string[]): Promise<number> {
  let command: Command;
  try {
    command = parseCommandLine(argv, examples());
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
    const where = e.topic === undefined ? 'protoloop' : `protoloop ${e.topic}`;
    process.stderr.write(`${where}: ${e.message}\n${usage(e.topic)}\n`);
    return 2;
  }
  switch (command.kind) {
    case 'help':
      process.stdout.write(usage(command.topic) + '\n');
      return 0;
    case 'version':
      process.stdout.write(version() + '\n');
      return 0;
    case 'inspect':
      return await inspect(command.cmd, command.pid, command.json);
    case 'serve':
      return await serve(command);
    case 'top':
      return await top(command.pid, command);
  }
}

try {
  process.exitCode = await main(process.argv.slice(2));
} catch (e) {
  process.stderr.write(`protoloop: ${(e as Error).message}\n`);
  process.exitCode = 1;
}
