// The `protoloop` command as a user meets it: --version, per-command --help, one line
// plus usage and exit 2 for a bad argument, exit 1 for a runtime failure, "no such
// process" told apart from "no inspection endpoint", and `serve` printing the pid that
// `protoloop ps` takes.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';

const cli = fileURLToPath(new URL('../../bin/protoloop.js', import.meta.url));
const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };

const children: ChildProcess[] = [];
afterEach(() => {
  for (const c of children.splice(0)) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
});

function protoloop(...args: string[]): Promise<{ stdout: string; stderr: string; code: number }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [cli, ...args], { timeout: 15_000 }, (err, stdout, stderr) => {
      resolve({ stdout, stderr, code: err === null ? 0 : typeof err.code === 'number' ? err.code : -1 });
    });
  });
}

/** A process that existed and is gone: its pid names no process (for a while at least). */
function deadPid(): Promise<number> {
  return new Promise((resolve) => {
    const c = spawn(process.execPath, ['-e', '']);
    c.on('exit', () => resolve(c.pid!));
  });
}

/** Spawns and waits until `pattern` shows up on stdout or stderr. */
function startUntil(args: string[], pattern: RegExp): Promise<{ child: ChildProcess; match: RegExpExecArray; output: () => string }> {
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  let out = '';
  return new Promise((resolve, reject) => {
    const check = (d: Buffer): void => {
      out += d.toString();
      const m = pattern.exec(out);
      if (m) resolve({ child, match: m, output: () => out });
    };
    child.stdout!.on('data', check);
    child.stderr!.on('data', check);
    child.on('exit', (code) => reject(new Error(`exited with ${code} before ${pattern}: ${out}`)));
  });
}

const exited = (c: ChildProcess): Promise<number | null> =>
  c.exitCode !== null ? Promise.resolve(c.exitCode) : new Promise((r) => c.once('exit', (code) => r(code)));

describe('protoloop command line', () => {
  it('--version prints the package version', async () => {
    const r = await protoloop('--version');
    expect(r).toMatchObject({ code: 0, stdout: `${pkg.version}\n` });
  });

  it('<command> --help prints that command\'s usage, exit 0', async () => {
    for (const cmd of ['ps', 'pstree', 'stats', 'serve']) {
      const r = await protoloop(cmd, '--help');
      expect(r.code, cmd).toBe(0);
      expect(r.stdout, cmd).toMatch(new RegExp(`^usage: protoloop ${cmd} `));
    }
    expect((await protoloop('--help')).stdout).toMatch(/protoloop serve <example>/);
  });

  it('a bad argument: one line naming the bad value, then the usage, exit 2, no stack trace', async () => {
    const cases: [string[], RegExp][] = [
      [['serve', 'echo', '--port', 'abc'], /^protoloop serve: bad --port 'abc'/],
      [['serve', 'echo', '--port', '70000'], /^protoloop serve: bad --port '70000'/],
      [['serve', 'nosuch'], /^protoloop serve: unknown example 'nosuch'; choose one of: .*echo/],
      [['serve', 'echo', '--colour'], /^protoloop serve: unknown option --colour/],
      [['serve', 'echo', '--port'], /^protoloop serve: option --port needs a value/],
      [['serve', 'echo', '--workers', '0'], /^protoloop serve: bad --workers '0'/],
      [['serve', 'echo', '--max-connections', '0'], /^protoloop serve: bad --max-connections '0'/],
      [['serve', 'echo', '--idle-timeout', '1.5'], /^protoloop serve: bad --idle-timeout '1.5'/],
      [['serve', 'http', '--idle-timeout', '1000'], /^protoloop serve: the http example is a Fastify app/],
      [['ps', 'abc'], /^protoloop ps: bad pid 'abc'/],
      [['ps'], /^protoloop ps: give the process id/],
      [['stats', '1', '2'], /^protoloop stats: unexpected argument '2'/],
      [['frobnicate'], /^protoloop: unknown command 'frobnicate'/],
      [[], /^protoloop: give a command/],
    ];
    for (const [args, first] of cases) {
      const r = await protoloop(...args);
      const lines = r.stderr.split('\n');
      expect(r.code, args.join(' ')).toBe(2);
      expect(lines[0], args.join(' ')).toMatch(first);
      expect(lines[1], args.join(' ')).toMatch(/^usage:/);
      expect(r.stderr, args.join(' ')).not.toMatch(/\n\s+at /);
    }
  });

  it('"no such process" and "no inspection endpoint" are told apart, exit 1', async () => {
    const gone = await deadPid();
    const r = await protoloop('ps', String(gone));
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(`protoloop: no such process: ${gone}\n`);

    const { child } = await startUntil(['-e', 'console.log("up"); setInterval(() => {}, 1000)'], /up/);
    const plain = await protoloop('ps', String(child.pid));
    expect(plain.code).toBe(1);
    expect(plain.stderr).toMatch(new RegExp(`^protoloop: process ${child.pid} has no protoloop inspection endpoint .*PROTOLOOP_INSPECT=1`));
  });

  it('serve prints the pid that ps takes, and stops cleanly on SIGTERM', async () => {
    const { child, match } = await startUntil([cli, 'serve', 'echo', '--port', '0', '--inspect'], /pid (\d+) \(protoloop ps \1\)[\s\S]*listening on 127\.0\.0\.1:(\d+)/);
    const pid = match[1]!;
    const port = Number(match[2]);
    const echoed = await new Promise<string>((resolve, reject) => {
      const s = net.connect(port, '127.0.0.1', () => s.end('hi'));
      let got = '';
      s.on('data', (d: Buffer) => (got += d.toString()));
      s.on('end', () => resolve(got));
      s.on('error', reject);
    });
    expect(echoed).toBe('hi');
    const ps = await protoloop('ps', pid);
    expect(ps.code).toBe(0);
    expect(ps.stdout).toContain(`process ${pid}`);
    child.kill('SIGTERM');
    expect(await exited(child)).toBe(0);
  });

  it('serve sets the server limits: past --max-connections a connection is closed at once, a silent one after --idle-timeout', async () => {
    const { child, match } = await startUntil([cli, 'serve', 'echo', '--port', '0', '--max-connections', '1', '--idle-timeout', '2000'], /listening on 127\.0\.0\.1:(\d+)/);
    const port = Number(match[1]);
    // The first client is served (its echo proves the server holds it), then stays silent.
    const first = net.connect(port, '127.0.0.1');
    const firstClosed = new Promise<void>((resolve) => first.on('close', () => resolve()));
    first.on('error', () => {});
    await new Promise<void>((resolve) => {
      first.once('data', () => resolve());
      first.write('x');
    });
    // The second is one too many: closed at once, nothing echoed.
    const second = await new Promise<string>((resolve) => {
      const s = net.connect(port, '127.0.0.1', () => s.write('y'));
      let got = '';
      s.on('data', (d: Buffer) => (got += d.toString()));
      s.on('error', () => {});
      s.on('close', () => resolve(got));
    });
    expect(second).toBe('');
    // The first, silent since its echo, is closed by the idle timeout (no fixed wait: its close is the event).
    await firstClosed;
    child.kill('SIGTERM');
    expect(await exited(child)).toBe(0);
  });

  it('serve --workers 2 runs a pool on one port; ps on the primary lists both workers; SIGTERM stops it with 0', async () => {
    const { child, match } = await startUntil([cli, 'serve', 'echo', '--workers', '2', '--inspect'], /primary pid (\d+), workers (\d+), (\d+)[\s\S]*listening on 127\.0\.0\.1:(\d+) with 2 workers/);
    const port = Number(match[4]);
    const echoed = await new Promise<string>((resolve, reject) => {
      const s = net.connect(port, '127.0.0.1', () => s.end('hi'));
      let got = '';
      s.on('data', (d: Buffer) => (got += d.toString()));
      s.on('end', () => resolve(got));
      s.on('error', reject);
    });
    expect(echoed).toBe('hi');
    const ps = await protoloop('ps', match[1]!);
    expect(ps.code).toBe(0);
    expect(ps.stdout).toContain(`worker 1 (pid ${match[2]})`);
    expect(ps.stdout).toContain(`worker 2 (pid ${match[3]})`);
    child.kill('SIGTERM');
    expect(await exited(child)).toBe(0);
  });

  it('serve on a port in use fails with exit 1', async () => {
    const taken = net.createServer();
    await new Promise<void>((r) => taken.listen(0, '127.0.0.1', r));
    try {
      const r = await protoloop('serve', 'echo', '--port', String((taken.address() as net.AddressInfo).port));
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/EADDRINUSE/);
    } finally {
      await new Promise((r) => taken.close(r));
    }
  });
});
