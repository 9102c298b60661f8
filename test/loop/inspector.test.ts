// Where the inspection socket lives, and what happens when that place is not ours.
import { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, rmSync, statSync, symlinkSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createLogger, Runner } from '../../src/index.ts';
import { inspectionDir, inspectionPath } from '../../src/loop/inspector.ts';

const saved = { TMPDIR: process.env.TMPDIR, XDG_RUNTIME_DIR: process.env.XDG_RUNTIME_DIR };
let base = '';

beforeEach(() => {
  base = mkdtempSync(join(tmpdir(), 'protoloop-inspector-test-'));
  process.env.TMPDIR = base;
  delete process.env.XDG_RUNTIME_DIR;
});

afterEach(() => {
  for (const [k, v] of Object.entries(saved)) {
    if (v === undefined) delete process.env[k];
    else process.env[k] = v;
  }
  rmSync(base, { recursive: true, force: true });
});

/** Runs one call with inspection on; returns what the loop logged and whether the socket existed meanwhile. */
async function runInspected(): Promise<{ log: string; socketSeen: boolean; answer: string | null }> {
  let log = '';
  const logger = createLogger({ level: 'debug', stream: { write: (s: string) => (log += s) } });
  const runner = new Runner({ inspect: true, logger, signals: [] });
  let socketSeen = false;
  let answer: string | null = null;
  try {
    await runner.run(async () => {
      const path = inspectionPath(process.pid);
      socketSeen = existsSync(path);
      if (socketSeen) answer = await ask(path);
    });
  } finally {
    await runner.close();
  }
  return { log, socketSeen, answer };
}

function ask(path: string): Promise<string> {
  return new Promise((resolve, reject) => {
    let out = '';
    const sock = connect(path, () => sock.write('{"cmd":"stats"}\n'));
    sock.on('data', (d: Buffer) => (out += d.toString()));
    sock.on('end', () => resolve(out));
    sock.on('error', reject);
  });
}

describe('the inspection directory', () => {
  it('is made private under TMPDIR and serves the endpoint', async () => {
    const r = await runInspected();
    expect(r.log).toBe('');
    expect(r.socketSeen).toBe(true);
    expect(JSON.parse(r.answer!)).toHaveProperty('pid', process.pid);
    expect(statSync(inspectionDir()).mode & 0o777).toBe(0o700);
  });

  it('uses $XDG_RUNTIME_DIR when it is set', async () => {
    const runtime = join(base, 'run-user');
    mkdirSync(runtime, { mode: 0o700 });
    process.env.XDG_RUNTIME_DIR = runtime;
    expect(inspectionPath(process.pid)).toBe(join(runtime, 'protoloop', `${process.pid}.sock`));
    const r = await runInspected();
    expect(r.socketSeen).toBe(true);
    expect(r.log).toBe('');
  });

  it('a directory open to others turns inspection off with one warning naming it; the app runs', async () => {
    const dir = inspectionDir();
    mkdirSync(dir);
    chmodSync(dir, 0o755);
    const first = await runInspected();
    expect(first.socketSeen).toBe(false);
    expect(first.log.trim().split('\n')).toHaveLength(1);
    expect(first.log).toContain(`refusing the directory ${dir}: it is not private (mode 755`);
    // Left as it was: not "fixed" behind the back of whoever made it.
    expect(statSync(dir).mode & 0o777).toBe(0o755);
    // One warning per path and process, not one per run.
    expect((await runInspected()).log).toBe('');
  });

  it('a symlink in its place turns inspection off with one warning; the link target is untouched', async () => {
    const target = join(base, 'elsewhere');
    mkdirSync(target, { mode: 0o700 });
    const runtime = join(base, 'xdg-symlink');
    mkdirSync(runtime, { mode: 0o700 });
    process.env.XDG_RUNTIME_DIR = runtime;
    symlinkSync(target, inspectionDir());
    const r = await runInspected();
    expect(r.socketSeen).toBe(false);
    expect(r.log).toContain(`refusing the directory ${inspectionDir()}: it is a symlink`);
    expect(existsSync(join(target, `${process.pid}.sock`))).toBe(false);
  });

  it.runIf(process.getuid?.() === 0)('a directory of another user turns inspection off with one warning', async () => {
    const runtime = join(base, 'xdg-other');
    mkdirSync(runtime, { mode: 0o700 });
    process.env.XDG_RUNTIME_DIR = runtime;
    const dir = inspectionDir();
    mkdirSync(dir, { mode: 0o700 });
    chownSync(dir, 65534, 65534);
    const r = await runInspected();
    expect(r.socketSeen).toBe(false);
    expect(r.log).toContain(`refusing the directory ${dir}: it belongs to user 65534`);
  });
});
