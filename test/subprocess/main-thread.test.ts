import { Worker } from 'node:worker_threads';
import { pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';

const INDEX = pathToFileURL(new URL('../../src/index.ts', import.meta.url).pathname).href;

// Runs in a worker thread (plain JavaScript: Node loads src/index.ts itself).
const WORKER = `
const { parentPort } = require('node:worker_threads');
(async () => {
  const pl = await import(${JSON.stringify(INDEX)});
  const loop = new pl.Loop();
  const calls = {
    createSubprocessExec: () => pl.createSubprocessExec('true'),
    createSubprocessShell: () => pl.createSubprocessShell('true'),
    subprocessExec: () => loop.subprocessExec(() => new pl.SubprocessProtocol(), 'true'),
    subprocessShell: () => loop.subprocessShell(() => new pl.SubprocessProtocol(), 'true'),
  };
  const out = {};
  for (const [name, call] of Object.entries(calls)) {
    try {
      const p = call();
      out[name] = { returned: typeof p };
      if (p && typeof p.catch === 'function') p.catch(() => {});
    } catch (e) {
      out[name] = { name: e.name, code: e.code, message: e.message, typed: e instanceof pl.MainThreadOnlyError };
    }
  }
  loop.close();
  parentPort.postMessage(out);
})().catch((e) => parentPort.postMessage({ crashed: String(e && e.stack || e) }));
`;

describe('main thread only', () => {
  it('every subprocess API throws MainThreadOnlyError at once in a worker thread, naming the thread bridge', async () => {
    const worker = new Worker(WORKER, { eval: true });
    try {
      const result = await new Promise<Record<string, unknown>>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error('worker did not answer in 15 s')), 15_000);
        worker.once('message', (m: Record<string, unknown>) => {
          clearTimeout(timer);
          resolve(m);
        });
        worker.once('error', (e) => {
          clearTimeout(timer);
          reject(e);
        });
      });
      expect(result.crashed).toBeUndefined();
      for (const name of ['createSubprocessExec', 'createSubprocessShell', 'subprocessExec', 'subprocessShell']) {
        expect(result[name], name).toMatchObject({ name: 'MainThreadOnlyError', code: 'ERR_PROTOLOOP_MAIN_THREAD_ONLY', typed: true });
        expect((result[name] as { message: string }).message).toMatch(/thread bridge/);
        expect((result[name] as { message: string }).message).toContain(name);
      }
    } finally {
      await worker.terminate();
    }
  });
});
