// NODE_DEBUG=protoloop: a child node process (the pinned node, process.execPath) runs a
// small program; its stderr has the loop's run/stop/close lines, the slow callback, the
// child's spawn and exit, and the steps of run()'s shutdown. Without NODE_DEBUG: none.
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const script = fileURLToPath(new URL('../fixtures/observability/node-debug.ts', import.meta.url));

function runScript(env: Record<string, string | undefined>): { status: number | null; stderr: string } {
  const r = spawnSync(process.execPath, [script], { env: { ...process.env, PROTOLOOP_DEBUG: '', ...env }, encoding: 'utf8', timeout: 20_000 });
  return { status: r.status, stderr: r.stderr };
}

describe('NODE_DEBUG=protoloop', () => {
  it('prints the loop life, slow callbacks, children and the shutdown steps on stderr', () => {
    const { status, stderr } = runScript({ NODE_DEBUG: 'protoloop' });
    expect(status).toBe(0);
    const lines = stderr.split('\n').filter((l) => /^PROTOLOOP \d+: /.test(l)).map((l) => l.replace(/^PROTOLOOP \d+: /, ''));
    const index = (re: RegExp): number => {
      const i = lines.findIndex((l) => re.test(l));
      expect(i, `a line matching ${re} in:\n${lines.join('\n')}`).toBeGreaterThanOrEqual(0);
      return i;
    };
    const started = index(/^Loop-\d+: run \(\d+ callbacks ready, \d+ timers\)$/);
    const spawned = index(/^spawned .*node.* \(pid \d+\)$/);
    const exited = index(/ \(pid \d+\) exited with return code 0$/);
    const slow = index(/^Loop-\d+: slow callback: <Handle busy\(\)> took \d+\.\d ms$/);
    const stopped = index(/^Loop-\d+: stop after \d+ iterations$/);
    const drain = index(/^shutdown: draining 0 server\(s\)$/);
    const cancel = index(/^shutdown: cancelling 1 pending task\(s\)$/);
    const hooks = index(/^shutdown: running \d+ shutdown hook\(s\)$/);
    const closing = index(/^shutdown: closing the loop$/);
    const closed = index(/^Loop-\d+: close \(0 tasks pending, \d+ callbacks dropped\)$/);
    expect(started).toBeLessThan(spawned);
    expect(spawned).toBeLessThan(exited);
    expect(exited).toBeLessThan(slow);
    expect(slow).toBeLessThan(stopped);
    expect([stopped, drain, cancel, hooks, closing, closed]).toEqual([...[stopped, drain, cancel, hooks, closing, closed]].sort((a, b) => a - b));
    // Outside debug mode the slow callback is printed here, not logged as a warning.
    expect(stderr).not.toContain('WARN protoloop');
  });

  it('prints nothing of protoloop without NODE_DEBUG, or when it names other sections', () => {
    for (const NODE_DEBUG of [undefined, 'net,http']) {
      const { status, stderr } = runScript({ NODE_DEBUG });
      expect(status).toBe(0);
      expect(stderr).not.toMatch(/^PROTOLOOP /m);
    }
  });
});
