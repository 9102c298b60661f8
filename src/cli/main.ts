#!/usr/bin/env node
/**
 * The `protoloop` command.
 *
 *   protoloop ps <pid> [--json]       tasks of a running protoloop process
 *   protoloop pstree <pid> [--json]   the same, as a tree of who awaits whom
 *   protoloop stats <pid> [--json]    loop lag, rates, open resources
 *   protoloop serve <example> [--host H] [--port P] [--debug] [--inspect]
 *
 * ps/pstree/stats need the target to run with inspection on (PROTOLOOP_INSPECT=1).
 * @module
 */
import { spawn } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { query } from './client.ts';
import { formatPs, formatPstree, formatStats } from './format.ts';

const USAGE = `usage:
  protoloop ps <pid> [--json]
  protoloop pstree <pid> [--json]
  protoloop stats <pid> [--json]
  protoloop serve <example> [--host HOST] [--port PORT] [--debug] [--inspect]`;

const examplesDir = fileURLToPath(new URL('../../examples/servers/', import.meta.url));

function examples(): string[] {
  if (!existsSync(examplesDir)) return [];
  return readdirSync(examplesDir)
    .filter((f) => f.endsWith('.ts') && !f.includes('client') && !f.startsWith('_'))
    .map((f) => f.slice(0, -3))
    .sort();
}

async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  const json = rest.includes('--json');
  const args = rest.filter((a) => a !== '--json');
  switch (cmd) {
    case 'ps':
    case 'pstree':
    case 'stats': {
      const pid = Number(args[0]);
      if (!args[0] || !Number.isInteger(pid)) {
        process.stderr.write(`protoloop ${cmd}: give the process id\n${USAGE}\n`);
        return 2;
      }
      const answer = await query(pid, cmd);
      if (json) process.stdout.write(JSON.stringify(answer, null, 2) + '\n');
      else if (cmd === 'ps') process.stdout.write(formatPs(pid, answer.tasks) + '\n');
      else if (cmd === 'pstree') process.stdout.write(formatPstree(pid, answer.tasks) + '\n');
      else process.stdout.write(formatStats(answer) + '\n');
      return 0;
    }
    case 'serve': {
      const name = args[0];
      const known = examples();
      if (!name || !known.includes(name)) {
        process.stderr.write(`protoloop serve: choose one of: ${known.join(', ') || '(no examples found)'}\n`);
        return 2;
      }
      const passArgs: string[] = [];
      const env = { ...process.env };
      for (let i = 1; i < args.length; i++) {
        const a = args[i]!;
        if (a === '--debug') env.PROTOLOOP_DEBUG = '1';
        else if (a === '--inspect') env.PROTOLOOP_INSPECT = '1';
        else if ((a === '--host' || a === '--port') && args[i + 1] !== undefined) passArgs.push(a, args[++i]!);
        else {
          process.stderr.write(`protoloop serve: unknown option ${a}\n${USAGE}\n`);
          return 2;
        }
      }
      const child = spawn(process.execPath, [`${examplesDir}${name}.ts`, ...passArgs], { stdio: 'inherit', env });
      const forward = (sig: NodeJS.Signals): void => {
        child.kill(sig);
      };
      process.on('SIGINT', forward);
      process.on('SIGTERM', forward);
      return await new Promise<number>((resolve) => {
        child.on('exit', (code, signal) => resolve(code ?? (signal ? 128 + 2 : 1)));
      });
    }
    case undefined:
    case '-h':
    case '--help':
    case 'help':
      process.stdout.write(USAGE + '\n');
      return cmd === undefined ? 2 : 0;
    default:
      process.stderr.write(`protoloop: unknown command ${cmd}\n${USAGE}\n`);
      return 2;
  }
}

try {
  process.exitCode = await main(process.argv.slice(2));
} catch (e) {
  process.stderr.write(`protoloop: ${(e as Error).message}\n`);
  process.exitCode = 1;
}
