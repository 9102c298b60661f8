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
import { isPrimaryMessage, WORKER_ENV, type PrimaryMessage, type WorkerMessage, type WorkerSpec } from './messages.ts';
import type { Served } from './serve-workers.ts';
import { dropUnused, inherit, ownedListeners, trackListeners, type ListenHandle } from './listeners.ts';

const spec = JSON.parse(process.env[WORKER_ENV] ?? 'null') as WorkerSpec | null;
if (spec === null || process.send === undefined) {
  console.error('protoloop: src/cluster/worker-main is started by serveWorkers(), not by hand');
  process.exit(2);
}

function tell(message: WorkerMessage, handle?: ListenHandle): void {
  if (process.connected) process.send!(message, handle as never);
}

// From the first line on, before any await: what the primary sends may arrive early.
if (spec.serveOptions.reusePort === true && typeof spec.serveOptions.port === 'number') trackListeners(spec.serveOptions.port);
const inherited = Promise.withResolvers<void>();
let toInherit = spec.inherit ?? 0;
if (toInherit === 0) inherited.resolve();
const bye = Promise.withResolvers<void>();
let onPrimary: ((m: PrimaryMessage) => void) | null = null;
process.on('message', (m: unknown, handle: unknown) => {
  if (!isPrimaryMessage(m)) return;
  if (m.t === 'listener') {
    if (handle != null) inherit(handle as ListenHandle);
    if (--toInherit === 0) inherited.resolve();
  } else if (m.t === 'handover') {
    // Every reusePort socket this worker listens on, for the worker that replaces it.
    const handles = ownedListeners();
    tell({ t: 'listeners', count: handles.length });
    for (const h of handles) tell({ t: 'listener' }, h);
  } else if (m.t === 'bye') bye.resolve();
  else onPrimary?.(m);
});
process.on('disconnect', () => {
  inherited.resolve();
  bye.resolve();
});
// Asked for only now: a message that arrives before there is a listener is lost.
if (toInherit > 0) tell({ t: 'inherit' });

/**
 * How long (ms, at most half the drain timeout) the clients of a protoloop server may
 * finish on their own once it stops listening, before they are asked to close. Why: a
 * connection accepted just before the drain has its request on the way; closing it at
 * once would drop that request unanswered.
 */
const LINGER_MS = 1000;

type ProtoloopServer = Served & { close(): unknown; waitClosed(): Promise<unknown> };

/**
 * Stops the server within the drain timeout. A protoloop server: stop listening, let
 * clients finish for up to {@link LINGER_MS}, then `shutdown({ closeClients: true })`
 * (the rest are asked to close, and aborted at the timeout). Anything else: `close()`.
 */
async function stopServed(served: Served, ms: number): Promise<void> {
  if (typeof served.shutdown !== 'function') {
    await served.close?.();
    return;
  }
  const s = served as ProtoloopServer;
  if (typeof s.close === 'function' && typeof s.waitClosed === 'function') {
    s.close();
    await waitFor(Promise.resolve(s.waitClosed()), Math.min(LINGER_MS, ms / 2)).catch(() => undefined);
  }
  await served.shutdown({ closeClients: true, timeout: ms });
}

async function drain(served: Served, ms: number): Promise<void> {
  try {
    await waitFor(stopServed(served, ms), ms + 2000);
  } catch {
    console.error(`protoloop worker ${spec!.workerId} (pid ${process.pid}): the drain did not finish within ${ms} ms; exiting anyway`);
  }
}

async function main(s: WorkerSpec): Promise<number> {
  const loop = getRunningLoop();
  let served: Served;
  try {
    await waitFor(inherited.promise, 10_000).catch(() => undefined);
    const mod = (await import(s.moduleUrl)) as Record<string, unknown>;
    const serve = mod[s.exportName];
    if (typeof serve !== 'function') throw new TypeError(`${s.moduleUrl} has no exported function ${s.exportName}() (serveWorkers calls it in every worker)`);
    served = (await (serve as (o: unknown) => Promise<Served>)({ ...s.serveOptions, workerId: s.workerId })) ?? {};
    const unused = dropUnused();
    if (unused > 0) console.error(`protoloop worker ${s.workerId} (pid ${process.pid}): serve() did not listen on ${unused} socket(s) of the worker it replaces; closed them`);
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
  onPrimary = (m: PrimaryMessage): void => {
    if (m.t === 'drain') loop.callSoon(request, 'drain');
  };
  const onDisconnect = (): void => {
    loop.callSoon(request, 'the primary went away');
  };
  process.on('disconnect', onDisconnect);
  tell({ t: 'ready', url: typeof served.url === 'string' ? served.url : null, port: typeof served.port === 'number' ? served.port : null });
  try {
    await stop;
    await drain(served, s.drainTimeout);
    // See messages.ts: read what the primary sent before it knew we stopped listening.
    if (process.connected) {
      tell({ t: 'drained' });
      await waitFor(bye.promise, 2000).catch(() => undefined);
    }
  } finally {
    onPrimary = null;
    process.off('disconnect', onDisconnect);
    loop.removeSignalHandler('SIGTERM');
    loop.removeSignalHandler('SIGINT');
  }
  return 0;
}

const code = await run(() => main(spec), { handleSigint: false, inspect: spec.inspect, name: `worker ${spec.workerId}` });
// The IPC channel (and whatever serve() left behind) would keep the process alive.
process.exit(code);
