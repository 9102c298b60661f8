// The demo (`npm start`) as a real process: every server answers a real client,
// `protoloop ps`/`pstree` show the servers' tasks by name, and SIGINT closes it all
// gracefully (exit 0, nothing on stderr, clients told, inspection socket removed).
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import net from 'node:net';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { Agent, request } from 'undici';
import { afterEach, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { inspectionPath } from '../../src/loop/inspector.ts';
import { pollOrThrow } from '../helpers.ts';

const execFileP = promisify(execFile);
const root = fileURLToPath(new URL('../../', import.meta.url));
const cli = fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url));

const cleanups: (() => void)[] = [];
afterEach(() => {
  for (const c of cleanups.splice(0).reverse()) c();
});

interface Demo {
  child: ChildProcess;
  pid: number;
  urls: Map<string, string>;
  out: () => string;
  err: () => string;
  exited: Promise<number | null>;
}

/** Starts the demo on free ports and waits for its banner (the servers' URLs and the pid). */
function startDemo(): Promise<Demo> {
  const child = spawn(process.execPath, ['examples/demo.ts', '--base-port', '0'], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
  cleanups.push(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  let out = '';
  let err = '';
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the demo printed no banner in 20 s:\n${out}\n${err}`)), 20_000);
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const pid = /^pid (\d+); look inside/m.exec(out);
      if (pid === null || !/npx protoloop stats \d+\n/.test(out)) return;
      clearTimeout(timer);
      const urls = new Map<string, string>();
      for (const m of out.matchAll(/^ {2}(\S.*?) {2,}((?:tcp|ws|http):\/\/\S+)$/gm)) urls.set(m[1]!, m[2]!);
      resolve({ child, pid: Number(pid[1]), urls, out: () => out, err: () => err, exited });
    });
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`the demo exited (${code}) before its banner:\n${out}\n${err}`));
    });
  });
}

/** host and port of a `scheme://host:port[/path]` URL. */
function hostPort(url: string): { host: string; port: number } {
  const u = new URL(url);
  return { host: u.hostname, port: Number(u.port) };
}

/** A TCP client that collects what it receives. */
function tcpClient(url: string): Promise<{ sock: net.Socket; received: () => string; closed: Promise<void> }> {
  return new Promise((resolve, reject) => {
    const sock = net.connect(hostPort(url));
    cleanups.push(() => sock.destroy());
    let data = '';
    sock.on('data', (d: Buffer) => (data += d.toString()));
    const closed = new Promise<void>((r) => sock.once('close', () => r()));
    sock.once('connect', () => resolve({ sock, received: () => data, closed }));
    sock.once('error', reject);
  });
}

/** A WebSocket client that collects the text messages it receives. */
function wsClient(url: string): Promise<{ ws: WebSocket; messages: string[]; closeCode: Promise<number> }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url);
    cleanups.push(() => ws.terminate());
    const messages: string[] = [];
    ws.on('message', (d) => messages.push(String(d)));
    const closeCode = new Promise<number>((r) => ws.once('close', (code) => r(code)));
    ws.once('open', () => resolve({ ws, messages, closeCode }));
    ws.once('error', reject);
  });
}


async function protoloop(...args: string[]): Promise<string> {
  const { stdout } = await execFileP(process.execPath, [cli, ...args], { timeout: 15_000 });
  return stdout;
}

const SERVER_TASKS = ['echo server', 'kv server', 'chat server', 'runner server', 'http server'];

describe('examples/demo.ts', () => {
  it('serves echo, kv, chat, runner and HTTP on one loop, shows them in ps/pstree, and exits 0 on SIGINT', { timeout: 60_000 }, async () => {
    const demo = await startDemo();
    expect(demo.pid).toBe(demo.child.pid);
    expect([...demo.urls.keys()].sort()).toEqual(['http (fastify)', 'key-value', 'tcp echo', 'websocket chat', 'websocket command runner']);
    for (const url of demo.urls.values()) expect(hostPort(url).host).toBe('127.0.0.1');

    // TCP echo: a round trip; the connection stays open through the shutdown.
    const echo = await tcpClient(demo.urls.get('tcp echo')!);
    echo.sock.write('hello demo');
    await pollOrThrow(() => echo.received() === 'hello demo', 5000, 'the echo');

    // Key-value: the line protocol, pipelined.
    const kv = await tcpClient(demo.urls.get('key-value')!);
    kv.sock.write('SET greeting hello world\nGET greeting\nQUIT\n');
    await kv.closed;
    expect(kv.received()).toBe('OK\nVALUE hello world\nBYE\n');

    // Chat: join, say something, hear it back; stays connected through the shutdown.
    const chat = await wsClient(demo.urls.get('websocket chat')!);
    await pollOrThrow(() => chat.messages.some((m) => m.includes('joined #lobby')), 5000, 'the chat welcome');
    chat.ws.send('/nick tester');
    chat.ws.send('hi everyone');
    await pollOrThrow(() => chat.messages.includes('<tester> hi everyone'), 5000, 'the chat line');

    // Command runner: run echo, get its output and its exit status.
    const runner = await wsClient(demo.urls.get('websocket command runner')!);
    runner.ws.send(JSON.stringify({ id: 1, cmd: 'echo', args: ['hello runner'] }));
    await pollOrThrow(() => runner.messages.some((m) => m.includes('"exit"')), 5000, 'the run to end');
    const replies = runner.messages.map((m) => JSON.parse(m) as Record<string, unknown>);
    expect(replies).toContainEqual({ id: 1, stream: 'stdout', data: 'hello runner\n' });
    expect(replies.at(-1)).toEqual({ id: 1, exit: { returncode: 0, signal: null, timedOut: false } });
    runner.ws.close(1000);
    await runner.closeCode;

    // HTTP: /tasks lists the loop's tasks, the demo's own among them.
    const dispatcher = new Agent();
    cleanups.push(() => void dispatcher.destroy());
    const res = await request(`${demo.urls.get('http (fastify)')!}/tasks`, { dispatcher });
    expect(res.statusCode).toBe(200);
    const report = (await res.body.json()) as { tasks: { name: string }[] };
    expect(report.tasks.map((t) => t.name)).toEqual(expect.arrayContaining(['demo', ...SERVER_TASKS, 'GET /tasks']));
    await dispatcher.close();

    // protoloop ps: one row per server task, each a child of `demo`, waiting for the signal.
    const ps = (await protoloop('ps', String(demo.pid))).trim().split('\n');
    expect(ps[0]).toMatch(new RegExp(`^\\d+ task\\(s\\) pending in process ${demo.pid}$`));
    const rows = new Map(ps.slice(2).map((r) => [r.split(/\s{2,}/)[1], r]));
    const demoId = /^(\d+)\s/.exec(rows.get('demo') ?? '')?.[1];
    expect(rows.get('demo')).toMatch(/TaskGroup: 5 task\(s\) to finish\s+-$/);
    for (const name of SERVER_TASKS) expect(rows.get(name)).toMatch(new RegExp(`SIGINT or SIGTERM\\s+demo \\(${demoId}\\)$`));

    const tree = await protoloop('pstree', String(demo.pid));
    expect(tree).toMatch(/^└── demo \(\d+\) awaiting TaskGroup: 5 task\(s\) to finish$/m);
    for (const name of SERVER_TASKS) expect(tree).toMatch(new RegExp(`^\\s+[├└]── ${name} \\(\\d+\\) awaiting SIGINT or SIGTERM$`, 'm'));

    // SIGINT: every server closes gracefully, the clients still connected are told.
    demo.child.kill('SIGINT');
    const code = await Promise.race([demo.exited, new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), 10_000))]);
    expect(code, `stdout:\n${demo.out()}\nstderr:\n${demo.err()}`).toBe(0);
    expect(await chat.closeCode).toBe(1001);
    await echo.closed;
    expect(demo.out()).toMatch(/SIGINT: closing the servers\n(.*\n)*all servers closed, bye\n$/);
    expect(demo.err()).toBe('');
    expect(existsSync(inspectionPath(demo.pid))).toBe(false);
  });

  it('a port in use: one line on stderr naming it and the way out (--base-port), exit 1', { timeout: 60_000 }, async () => {
    // Hold the fourth port of a block and start the demo on that block.
    const holder = net.createServer();
    await new Promise<void>((resolve) => holder.listen(0, '127.0.0.1', resolve));
    cleanups.push(() => holder.close());
    const held = (holder.address() as net.AddressInfo).port;
    const base = held - 3;
    const r = await new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
      const env = { ...process.env, npm_lifecycle_event: 'start' };
      execFile(process.execPath, ['examples/demo.ts', '--base-port', String(base)], { cwd: root, env, timeout: 30_000 }, (err, stdout, stderr) => {
        resolve({ code: err === null ? 0 : typeof err.code === 'number' ? err.code : null, stdout, stderr });
      });
    });
    expect(r.code, r.stderr).toBe(1);
    // Another process may hold a neighbouring port of the block too: then it is named as well.
    const lines = r.stderr.trimEnd().split('\n');
    expect(lines, r.stderr).toHaveLength(1);
    expect(lines[0]).toMatch(new RegExp(`^demo: port (\\S+, )*127\\.0\\.0\\.1:${held}(, \\S+)* already in use; \`npm start -- --base-port 0\` picks free ports`));
    expect(r.stdout).toBe('');
  });

  it('refuses a bad --base-port with exit code 2', async () => {
    const r = await new Promise<{ code: number | null; stderr: string }>((resolve) => {
      execFile(process.execPath, ['examples/demo.ts', '--base-port', '65534'], { cwd: root, timeout: 15_000 }, (err, _stdout, stderr) => {
        resolve({ code: err === null ? 0 : typeof err.code === 'number' ? err.code : null, stderr });
      });
    });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--base-port must be/);
  });
});
