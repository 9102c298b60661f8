import { spawn } from 'node:child_process';
import { existsSync, realpathSync, statSync } from 'node:fs';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { protoloop, startTarget, stop, target, track } from './helpers.ts';
import { inspectionPath } from '../../src/loop/inspector.ts';


/** Whether any user has `bits` (0o004 read, 0o001 execute) on `file` and can reach it. */
function reachableByOthers(file: string, bits: number): boolean {
  let p = realpathSync(file);
  if ((statSync(p).mode & bits) !== bits) return false;
  while (p !== dirname(p)) {
    p = dirname(p);
    if ((statSync(p).mode & 0o001) === 0) return false;
  }
  return true;
}
// The other-user test runs node and the fixture as `nobody`: a checkout under a private
// directory (mktemp -d) cannot be reached by that user at all.
const otherUserCanRun = process.getuid?.() === 0 && reachableByOthers(process.execPath, 0o005) && reachableByOthers(target, 0o004);





describe('protoloop ps / pstree / stats', () => {
  it('lists the tasks of a running process: names, what they await, their parents', async () => {
    const { pid, child } = await startTarget();
    // main awaits worker from the step that printed 'ready': every task is at its await.
    const ps = await protoloop('ps', String(pid));
    expect(ps.code).toBe(0);
    const rows = ps.stdout.trim().split('\n');
    expect(rows[0]).toBe(`5 task(s) pending in process ${pid}`);
    expect(rows[1]).toMatch(/^ID\s+NAME\s+STATE\s+AGE\s+AWAITING\s+PARENT$/);
    const byName = Object.fromEntries(rows.slice(2).map((r) => [r.split(/\s{2,}/)[1], r]));
    expect(byName.main).toMatch(/waiting .* Task worker\s+-$/);
    expect(byName.sleeper).toMatch(/sleep\(60000 ms\)\s+main \(\d+\)$/);
    expect(byName.worker).toMatch(/shutdown gate\s+main \(\d+\)$/);
    expect(byName.grandchild).toMatch(/sleep\(60000 ms\)\s+worker \(\d+\)$/);

    const tree = await protoloop('pstree', String(pid));
    expect(tree.stdout).toMatch(/└── main \(\d+\) awaiting Task worker\n/);
    expect(tree.stdout).toMatch(/waits-for-worker \(\d+\) awaiting Task worker\n\s+└── worker \(\d+\) awaiting shutdown gate\n\s+└── grandchild/);

    const json = JSON.parse((await protoloop('ps', String(pid), '--json')).stdout) as { tasks: { name: string; awaiting: string }[] };
    expect(json.tasks.map((t) => t.name).sort()).toEqual(['grandchild', 'main', 'sleeper', 'waits-for-worker', 'worker']);

    const stats = await protoloop('stats', String(pid));
    expect(stats.stdout).toMatch(/loop running/);
    expect(stats.stdout).toMatch(/tasks\s+5 pending, 5 created/);
    expect(stats.stdout).toMatch(/^executor 1\s+kind ThreadPoolExecutor, state running, workers \d+, running 0, queued 0, completed 1$/m);
    const statsJson = JSON.parse((await protoloop('stats', String(pid), '--json')).stdout) as { tasksPending: number; lagMs: { last: number } };
    expect(statsJson.tasksPending).toBe(5);
    expect(typeof statsJson.lagMs.last).toBe('number');

    expect(await stop(child)).toBe(0);
    expect(existsSync(inspectionPath(pid))).toBe(false);
  });

  it('opens no endpoint when inspection is off', async () => {
    const plain = spawn(process.execPath, ['-e', `import('${fileURLToPath(new URL('../../src/index.ts', import.meta.url))}').then(m => m.run(async () => { process.stdout.write('ready ' + process.pid + '\\n'); await m.sleep(60_000); }))`], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    track(plain);
    const pid2 = await new Promise<number>((resolve) => plain.stdout!.once('data', (d: Buffer) => resolve(Number(/ready (\d+)/.exec(d.toString())![1]))));
    expect(existsSync(inspectionPath(pid2))).toBe(false);
    const r = await protoloop('ps', String(pid2));
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/has no protoloop inspection endpoint .* PROTOLOOP_INSPECT=1/);
  });

  it.skipIf(!otherUserCanRun)('another user cannot read the endpoint', async () => {
    const nobody = 65534;
    const { pid, child } = await startTarget({}, nobody);
    const path = inspectionPath(pid, nobody);
    const dir = statSync(path.slice(0, path.lastIndexOf('/')));
    expect(dir.uid).toBe(nobody);
    expect(dir.mode & 0o777).toBe(0o700);
    expect(statSync(path).mode & 0o777).toBe(0o600);
    const probe = await new Promise<string>((resolve) => {
      const c = spawn(process.execPath, ['-e', `require('net').connect(${JSON.stringify(path)}).on('connect', () => { console.log('connected'); process.exit(0) }).on('error', (e) => { console.log(e.code); process.exit(0) })`], {
        uid: 1,
        gid: 1,
        stdio: ['ignore', 'pipe', 'inherit'],
      });
      let out = '';
      c.stdout.on('data', (d: Buffer) => (out += d.toString()));
      c.on('exit', () => resolve(out.trim()));
    });
    expect(probe).toBe('EACCES');
    await stop(child);
  });

  it('explains bad usage', async () => {
    expect((await protoloop('ps')).code).toBe(2);
    expect((await protoloop('frobnicate')).stderr).toMatch(/unknown command 'frobnicate'/);
    expect((await protoloop('ps', '999999999')).stderr).toMatch(/no such process: 999999999/);
  });
});
