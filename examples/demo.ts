/**
 * The demo `npm start` runs: five example servers on one loop, in one process, with
 * inspection on so that `protoloop ps|pstree|stats <pid>` can look inside.
 *
 *   node examples/demo.ts [--host 127.0.0.1] [--base-port N] [--debug]
 *
 * Ports: TCP echo 8888, key-value 8889, WebSocket chat 8890, command runner 8891,
 * Fastify app 8080. `--base-port N` puts them at N, N+1, N+2, N+3 and N+4 (in that
 * order); `--base-port 0` picks free ports. `--debug` turns the loop's debug mode on.
 *
 * The tasks: the main task `demo` runs a task group with one child per server
 * (`echo server`, `kv server`, ...); each child starts its server, then waits for
 * SIGINT or SIGTERM and closes it gracefully. The clients' tasks (streams clients,
 * HTTP handlers, command runs) appear beside them while they are connected.
 */
import { parseArgs } from 'node:util';
import { getRunningLoop, run, taskGroup, type Future } from '../src/index.ts';
import type { ServeOptions, Served } from './servers/_served.ts';
import { serve as serveChat } from './servers/chat.ts';
import { serve as serveEcho } from './servers/echo.ts';
import { serve as serveHttp } from './servers/http.ts';
import { serve as serveKv } from './servers/kv.ts';
import { serve as serveRunner } from './servers/runner.ts';

/** One server of the demo: its task's name, its default port, how to start it. */
interface Spec {
  task: string;
  port: number;
  serve: (options: ServeOptions) => Promise<Served>;
}

const SPECS: Spec[] = [
  { task: 'echo server', port: 8888, serve: serveEcho },
  { task: 'kv server', port: 8889, serve: serveKv },
  { task: 'chat server', port: 8890, serve: serveChat },
  { task: 'runner server', port: 8891, serve: serveRunner },
  { task: 'http server', port: 8080, serve: serveHttp },
];

const USAGE = 'usage: node examples/demo.ts [--host HOST] [--base-port N] [--debug]';

function parseCommandLine(): { host: string; basePort: number | null; debug: boolean } {
  let values;
  try {
    ({ values } = parseArgs({ options: { host: { type: 'string', default: '127.0.0.1' }, 'base-port': { type: 'string' }, debug: { type: 'boolean', default: false } } }));
  } catch (e) {
    console.error(`demo: ${(e as Error).message}\n${USAGE}`);
    process.exit(2);
  }
  let basePort: number | null = null;
  if (values['base-port'] !== undefined) {
    basePort = Number(values['base-port']);
    if (!(Number.isInteger(basePort) && basePort >= 0 && basePort + SPECS.length - 1 <= 65535)) {
      console.error(`demo: --base-port must be 0 (free ports) or a port with room for ${SPECS.length} after it\n${USAGE}`);
      process.exit(2);
    }
  }
  return { host: values.host, basePort, debug: values.debug };
}

/**
 * One server's task: starts it, reports it ready, waits for the stop signal, closes it.
 * A cancellation (the group aborting because another server failed) closes it too.
 */
async function hold(spec: Spec, options: ServeOptions, ready: Future<Served>, stop: Future<string>): Promise<void> {
  const served = await spec.serve(options);
  try {
    if (!ready.done()) ready.setResult(served);
    await stop;
  } finally {
    await served.close();
  }
}

async function demo(host: string, basePort: number | null): Promise<void> {
  const loop = getRunningLoop();
  // What every server task awaits: `protoloop ps` shows it as `SIGINT or SIGTERM`.
  const stop = loop.createFuture<string>('SIGINT or SIGTERM');
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    loop.addSignalHandler(sig, () => {
      if (stop.done()) {
        // A second signal while closing: stop waiting for anyone.
        console.error(`${sig} again: exiting at once`);
        process.exit(130);
      }
      console.log(`${sig}: closing the servers`);
      stop.setResult(sig);
    });
  }
  try {
    // Until every server listens, their lines stay quiet: when one cannot start, the
    // others closing again is not news, the error line below is.
    let allStarted = false;
    await taskGroup(async (tg) => {
      const started: Future<Served>[] = [];
      SPECS.forEach((spec, i) => {
        const port = basePort === null ? spec.port : basePort === 0 ? 0 : basePort + i;
        const name = spec.task.replace(/ server$/, '');
        const log = (line: string): void => {
          if (allStarted) console.log(`[${name}] ${line}`);
        };
        const ready = loop.createFuture<Served>(`${spec.task} listening`);
        started.push(ready);
        tg.createTask(() => hold(spec, { host, port, log }, ready, stop), { name: spec.task });
      });
      // If a server cannot start, the group cancels this wait and the others.
      const servers: Served[] = [];
      for (const ready of started) servers.push(await ready);
      allStarted = true;
      const width = Math.max(...servers.map((s) => s.name.length));
      console.log(`protoloop demo: ${servers.length} servers on one loop`);
      for (const s of servers) console.log(`  ${s.name.padEnd(width)}  ${s.url}`);
      console.log(`pid ${process.pid}; look inside from another terminal:`);
      for (const cmd of ['ps', 'pstree', 'stats']) console.log(`  npx protoloop ${cmd} ${process.pid}`);
      console.log('Ctrl-C (SIGINT) or SIGTERM closes every server gracefully.');
      // The body ends here; the group waits for its server tasks to finish.
    });
  } finally {
    loop.removeSignalHandler('SIGINT');
    loop.removeSignalHandler('SIGTERM');
  }
  console.log('all servers closed, bye');
}

const { host, basePort, debug } = parseCommandLine();
try {
  await run(() => demo(host, basePort), { name: 'demo', inspect: true, handleSigint: false, ...(debug ? { debug: true } : {}) });
} catch (e) {
  // A server that could not start: the group's errors, one line each, and the ports
  // already in use together in one line that says the way out.
  const errors: unknown[] = e instanceof AggregateError ? e.errors : [e];
  const inUse = errors.filter((err) => (err as { code?: unknown } | null)?.code === 'EADDRINUSE');
  if (inUse.length > 0) {
    const command = process.env.npm_lifecycle_event === 'start' ? 'npm start --' : 'node examples/demo.ts';
    const ports = inUse.map(portInUse).join(', ');
    console.error(`demo: port ${ports} already in use; \`${command} --base-port 0\` picks free ports (--base-port N uses N to N+${SPECS.length - 1})`);
  }
  for (const err of errors.filter((x) => !inUse.includes(x))) console.error(`demo: ${err instanceof Error ? err.message : String(err)}`);
  process.exitCode = 1;
}

/** The address of a listen error (Node's error, protoloop's keeps it as its cause). */
function portInUse(err: unknown): string {
  const { address, port } = ((err as { cause?: unknown }).cause ?? err) as { address?: string; port?: number };
  return port === undefined ? String((err as Error).message) : `${address ?? host}:${port}`;
}
