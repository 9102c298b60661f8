/**
 * The entry point of a `serveWorkers()` worker process (forked by node:cluster). It
 * imports the module, runs its `serve()` under a loop of its own with `run()`, tells
 * the primary it is ready, then serves until it is asked to drain (a `drain` message,
 * SIGTERM or SIGINT, or the primary going away); then it shuts the server down
 * gracefully and exits 0. A failure to start is reported to the primary, exit code 1.
 * @module
 */
import { getRunningLoop } from '../loop/loop.ts';
import { run } from '../loop/runner.ts';
import { waitFor } from '../concurrency/timeouts.ts';
import { WORKER_ENV, type PrimaryMessage, type WorkerMessage, type WorkerSpec } from './messages.ts';
import type { Served } from './serve-workers.ts';

const spec = JSON.parse(process.env[WORKER_ENV] ?? 'null') as WorkerSpec | null;
if (spec === null || process.send === undefined) {
  console.error('protoloop: src/cluster/worker-main is started by serveWorkers(), not by hand');
  process.exit(2);
}

function tell(message: WorkerMessage): void {
  if (process.connected) process.send!(message);
}

/** Stops the server: `shutdown()` (protoloop servers) or `close()`, within the drain timeout. */
async function drain(served: Served, ms: number): Promise<void> {
  const closing = typeof served.shutdown === 'function' ? served.shutdown({ closeClients: true, timeout: ms }) : served.close?.();
  try {
    await waitFor(Promise.resolve(closing), ms + 1000);
  } catch {
    console.error(`protoloop worker ${spec!.workerId} (pid ${process.pid}): the drain did not finish within ${ms} ms; exiting anyway`);
  }
}

async function main(s: WorkerSpec): Promise<number> {
  const loop = getRunningLoop();
  let served: Served;
  try {
    const mod = (await import(s.moduleUrl)) as Record<string, unknown>;
    const serve = mod[s.exportName];
    if (typeof serve !== 'function') throw new TypeError(`${s.moduleUrl} has no exported function ${s.exportName}() (serveWorkers calls it in every worker)`);
    served = (await (serve as (o: unknown) => Promise<Served>)({ ...s.serveOptions, workerId: s.workerId })) ?? {};
  } catch (err) {
    const e = err instanceof Error ? err : new Error(String(err));
    tell({ t: 'failed', message: `${e.name}: ${e.message}`, stack: e.stack });
    return 1;
  }
  const stop = loop.createFuture<string>('a drain request (message, SIGTERM or SIGINT)');
  const request = (why: string): void => {
    if (!stop.done()) stop.setResult(why);
  };
  loop.addSignalHandler('SIGTERM', request, 'SIGTERM');
  loop.addSignalHandler('SIGINT', request, 'SIGINT');
  const onMessage = (m: PrimaryMessage): void => {
    if (m?.t === 'drain') loop.callSoon(request, 'drain');
  };
  const onDisconnect = (): void => {
    loop.callSoon(request, 'the primary went away');
  };
  process.on('message', onMessage);
  process.on('disconnect', onDisconnect);
  tell({ t: 'ready', url: typeof served.url === 'string' ? served.url : null, port: typeof served.port === 'number' ? served.port : null });
  try {
    await stop;
    await drain(served, s.drainTimeout);
  } finally {
    process.off('message', onMessage);
    process.off('disconnect', onDisconnect);
    loop.removeSignalHandler('SIGTERM');
    loop.removeSignalHandler('SIGINT');
  }
  return 0;
}

const code = await run(() => main(spec), { handleSigint: false, inspect: spec.inspect, name: `worker ${spec.workerId}` });
// The IPC channel (and whatever serve() left behind) would keep the process alive.
process.exit(code);
