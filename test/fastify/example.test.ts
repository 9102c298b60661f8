import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { request } from 'undici';
import { describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { agent, pollUntil } from './helpers.ts';

const script = fileURLToPath(new URL('../../examples/servers/http.ts', import.meta.url));

function start(): Promise<{ child: ChildProcess; url: string; out: () => string; exit: Promise<number | null> }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [script, '--host', '127.0.0.1', '--port', '0'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    const killer = setTimeout(() => child.kill('SIGKILL'), 25_000);
    const exit = new Promise<number | null>((r) =>
      child.once('exit', (code) => {
        clearTimeout(killer);
        r(code);
      }),
    );
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /^listening on (http:\/\/127\.0\.0\.1:\d+)$/m.exec(out);
      if (m) resolve({ child, url: m[1]!, out: () => out, exit });
    });
    child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
    child.once('error', reject);
    void exit.then((code) => reject(new Error(`example exited early (${code}): ${out}`)));
  });
}

function openWs(url: string): Promise<{ ws: WebSocket; lines: string[] }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url);
    const lines: string[] = [];
    ws.on('message', (d) => lines.push(String(d)));
    ws.once('open', () => resolve({ ws, lines }));
    ws.once('error', reject);
  });
}

describe('examples/servers/http.ts', () => {
  it('proxies with cancellation, streams a child, chats over WebSocket, reports tasks, and shuts down on SIGTERM', async () => {
    const { child, url, out, exit } = await start();
    const dispatcher = agent();
    try {
      const proxied = await request(`${url}/proxy?ms=20`, { dispatcher });
      expect(await proxied.body.json()).toEqual({ upstream: { waitedMs: 20 }, status: 200 });

      // The client leaves: the proxy's task is cancelled and the upstream sees it.
      const ac = new AbortController();
      const gone = request(`${url}/proxy?ms=10000`, { dispatcher, signal: ac.signal });
      await new Promise((r) => setTimeout(r, 200));
      ac.abort();
      await expect(gone).rejects.toThrow();
      expect(await pollUntil(() => /upstream: GET \/slow cancelled/.test(out()))).toBe(true);

      const streamed = await request(`${url}/run?n=3`, { dispatcher });
      expect(await streamed.body.text()).toBe('line 1 of 3\nline 2 of 3\nline 3 of 3\nexit status 0\n');

      const a = await openWs(`${url.replace('http', 'ws')}/chat`);
      const b = await openWs(`${url.replace('http', 'ws')}/chat`);
      a.ws.send('hello');
      expect(await pollUntil(() => b.lines.some((l) => /guest-\d+: hello/.test(l)))).toBe(true);

      const tasks = await request(`${url}/tasks`, { dispatcher });
      const report = (await tasks.body.json()) as { tasks: { name: string }[]; loop: { tasksCreated: number }; http: { disconnects: number }; chat: number };
      expect(report.tasks.map((t) => t.name)).toEqual(expect.arrayContaining(['main', 'GET /tasks']));
      expect(report.http.disconnects).toBe(1);
      expect(report.chat).toBe(2);

      const closes = [a, b].map(({ ws }) => new Promise<number>((r) => ws.once('close', (code) => r(code))));
      child.kill('SIGTERM');
      expect(await Promise.all(closes)).toEqual([1001, 1001]);
      expect(await exit).toBe(0);
      expect(out()).toMatch(/SIGTERM: shutting down\nbye\n/);
    } finally {
      await dispatcher.close();
      if (child.exitCode === null) child.kill('SIGKILL');
    }
  });
});
