// Every way a Fastify app under run() shuts down lets its in-flight request answer:
// server.close(), server.shutdown(), app.close(), main returning without a close, SIGTERM, SIGINT.
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import Fastify, { type FastifyInstance } from 'fastify';
import { request, type Dispatcher } from 'undici';
import { describe, expect, it } from 'vitest';
import { Event, run, sleep } from '../../src/index.ts';
import { protoloopFastify, serveFastify, type FastifyServer } from '../../src/fastify/index.ts';
import { agent } from './helpers.ts';

const fixture = fileURLToPath(new URL('../fixtures/fastify/serve.ts', import.meta.url));

/** What the in-flight request got: its status and body, or the error. */
type Outcome = { status: number; body: string } | { error: string };

function outcome(url: string, dispatcher: Dispatcher): Promise<Outcome> {
  return request(url, { dispatcher }).then(
    async (r) => ({ status: r.statusCode, body: await r.body.text() }),
    (e: Error & { code?: string }) => ({ error: e.code ?? e.message }),
  );
}

/**
 * Runs an app whose GET /slow answers "drained" only once the app is closing; `stop`
 * is called while that request is in flight, then main returns.
 */
async function inFlightThrough(
  stop: (server: FastifyServer, app: FastifyInstance) => Promise<void> | void,
): Promise<{ answer: Outcome; state: string; afterStop: { state: string; inFlight: number; handlerDone: boolean } }> {
  const dispatcher = agent();
  let answer: Promise<Outcome> | null = null;
  let app: FastifyInstance | null = null;
  let afterStop = { state: '', inFlight: -1, handlerDone: false };
  try {
    await run(
      async () => {
        app = Fastify();
        await app.register(protoloopFastify);
        const started = new Event();
        const closing = new Event();
        app.addHook('preClose', (done) => {
          closing.set();
          done();
        });
        let handlerDone = false;
        app.get('/slow', async () => {
          started.set();
          await closing.wait();
          await sleep(5);
          handlerDone = true;
          return 'drained';
        });
        const server = await serveFastify(app, { host: '127.0.0.1' });
        answer = outcome(`${server.url}/slow`, dispatcher);
        await started.wait();
        await stop(server, app);
        // Where the stop left things when main got control back.
        afterStop = { state: app.protoloop.state, inFlight: app.protoloop.stats().inFlight, handlerDone };
      },
      { signals: [] },
    );
    return { answer: await answer!, state: app!.protoloop.state, afterStop };
  } finally {
    await dispatcher.close();
  }
}

const drained = { status: 200, body: 'drained' };

describe('Fastify shutdown paths drain the request in flight', () => {
  // Each awaited close returns only once the request in flight was answered.
  const answered = { state: 'closed', inFlight: 0, handlerDone: true };

  it('await server.close(), then main returns', async () => {
    expect(await inFlightThrough(async (server) => await server.close())).toEqual({ answer: drained, state: 'closed', afterStop: answered });
  });

  it('server.close() without awaiting it, then main returns: run() waits for the close', async () => {
    const r = await inFlightThrough((server) => void server.close());
    expect(r.answer).toEqual(drained);
    expect(r.state).toBe('closed');
    expect(r.afterStop).toMatchObject({ inFlight: 1, handlerDone: false });
  });

  it('await server.shutdown(), then main returns', async () => {
    expect(await inFlightThrough(async (server) => void (await server.shutdown()))).toEqual({ answer: drained, state: 'closed', afterStop: answered });
  });

  it('await app.close(), then main returns', async () => {
    expect(await inFlightThrough(async (_server, app) => await app.close())).toEqual({ answer: drained, state: 'closed', afterStop: answered });
  });

  it('main returns without closing anything', async () => {
    const r = await inFlightThrough(() => {});
    expect(r.answer).toEqual(drained);
    expect(r.state).toBe('closed');
    expect(r.afterStop).toEqual({ state: 'open', inFlight: 1, handlerDone: false });
  });

  for (const [sig, code] of [['SIGTERM', 0], ['SIGINT', 130]] as const) {
    it(`${sig} to a process serving it`, async () => {
      const child = spawn(process.execPath, [fixture], { stdio: ['ignore', 'pipe', 'pipe'] });
      const killer = setTimeout(() => child.kill('SIGKILL'), 20_000);
      let out = '';
      let err = '';
      child.stderr.on('data', (d: Buffer) => (err += d.toString()));
      const exited = new Promise<number | null>((resolve) => child.once('exit', (c) => resolve(c)));
      const dispatcher = agent();
      try {
        const url = await new Promise<string>((resolve, reject) => {
          child.stdout.on('data', (d: Buffer) => {
            out += d.toString();
            const m = /^listening on (\S+)$/m.exec(out);
            if (m) resolve(m[1]!);
          });
          void exited.then((c) => reject(new Error(`exited early (${c}): ${out}${err}`)));
        });
        const answer = outcome(`${url}/slow`, dispatcher);
        await new Promise<void>((resolve) => {
          const check = (): void => {
            if (out.includes('handler started\n')) resolve();
          };
          child.stdout.on('data', check);
          check();
        });
        child.kill(sig);
        expect(await answer).toEqual(drained);
        expect(await exited).toBe(code);
        expect(err).toMatch(new RegExp(`^protoloop: ${sig} stopped main; shut down gracefully \\(\\w+, exit code ${code}\\)\\n$`));
      } finally {
        clearTimeout(killer);
        await dispatcher.close();
      }
    });
  }
});
