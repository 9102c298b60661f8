// `protoloop top <pid>` against a real child process with inspection on (the fixture of
// the ps/stats tests): bounded frames (--count), --json lines, a target that goes away,
// and command-line mistakes.
import { spawn } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { cli, protoloop, startTarget, stop, track } from './helpers.ts';






describe('protoloop top', () => {
  it('prints --count frames of lag, rates, tasks by state, resources and executors, then exits', async () => {
    const { pid, child } = await startTarget();
    const r = await protoloop('top', String(pid), '--count', '2', '--interval', '100');
    expect(r.code).toBe(0);
    const frames = r.stdout.split(/\n(?=protoloop top - )/);
    expect(frames).toHaveLength(2);
    for (const f of frames) {
      expect(f).toMatch(new RegExp(`^protoloop top - process ${pid}, loop running, debug off, up \\S+`));
      expect(f).toMatch(/^lag \d+\.\d ms \(max \d+\.\d ms\)\s+callbacks \d+\/s\s+task steps \d+\/s/m);
      expect(f).toMatch(/^tasks 5 pending: \d+ waiting, \d+ ready or in foreign code, 0 cancelling; 5 created$/m);
      expect(f).toMatch(/^executor 1: ThreadPoolExecutor running, 0\/\d+ busy, 0 queued, 1 done$/m);
      expect(f).toMatch(/^ID\s+NAME\s+STATE\s+AGE\s+AWAITING$/m);
      expect(f).toMatch(/ sleeper .*sleep\(60000 ms\)/);
    }
    expect(await stop(child)).toBe(0);
  });

  it('shows the slowest recent callbacks of a debug-mode target', async () => {
    const { pid, child } = await startTarget({ PROTOLOOP_DEBUG: '1', TARGET_SLOW_CALLBACK: '1' });
    const r = await protoloop('top', String(pid), '--count', '1');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^ {2}slow: <Handle blockTheLoop\(\).*> took \d+ ms, .* ago$/m);
    const j = await protoloop('top', String(pid), '--json', '--count', '1');
    const frame = JSON.parse(j.stdout.trim()) as { stats: { slowRecent: { what: string; durationMs: number }[] } };
    expect(frame.stats.slowRecent[0]!.what).toMatch(/blockTheLoop/);
    expect(frame.stats.slowRecent[0]!.durationMs).toBeGreaterThanOrEqual(150);
    expect(await stop(child)).toBe(0);
  });

  it('--json prints one object per frame', async () => {
    const { pid, child } = await startTarget();
    const r = await protoloop('top', String(pid), '--json', '--count', '2', '--interval', '50');
    expect(r.code).toBe(0);
    const lines = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as { stats: { tasksPending: number; pid: number }; tasks: unknown[] });
    expect(lines).toHaveLength(2);
    for (const l of lines) {
      expect(l.stats).toMatchObject({ pid, tasksPending: 5 });
      expect(l.tasks).toHaveLength(5);
    }
    expect(await stop(child)).toBe(0);
  });

  it('ends with one line and exit code 1 when the target goes away', async () => {
    const { pid, child } = await startTarget();
    const topProc = spawn(process.execPath, [cli, 'top', String(pid), '--interval', '50'], { stdio: ['ignore', 'pipe', 'pipe'] });
    track(topProc);
    let out = '';
    const firstFrame = new Promise<void>((resolve) =>
      topProc.stdout!.on('data', (d: Buffer) => {
        out += d.toString();
        if (out.includes('protoloop top - ')) resolve();
      }),
    );
    const exited = new Promise<number | null>((resolve) => topProc.on('exit', (code) => resolve(code)));
    await firstFrame;
    child.kill('SIGTERM');
    expect(await exited).toBe(1);
    const last = out.trim().split('\n').at(-1)!;
    expect(last).toMatch(new RegExp(`^protoloop top: process ${pid} went away \\(`));
  });

  it('refuses a missing pid and a bad --interval or --count with the usage (exit code 2)', async () => {
    for (const args of [['top'], ['top', '1', '--interval', '10'], ['top', '1', '--count', '0'], ['top', '1', '--count', 'x']]) {
      const r = await protoloop(...args);
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(/^protoloop top: .*\nusage: protoloop top <pid>/);
    }
    const help = await protoloop('top', '--help');
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/--count N prints N frames and exits/);
  });
});
