// examples/worker-bridge.ts, run as a real process: a worker thread is refused a
// subprocess, then gets one from the main loop through the thread bridge.
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const script = fileURLToPath(new URL('../../examples/worker-bridge.ts', import.meta.url));

describe('examples/worker-bridge.ts', () => {
  it('the worker is refused a direct subprocess, then runs one through the bridge', async () => {
    const { code, stdout, stderr } = await new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
      execFile(process.execPath, [script], { timeout: 20_000 }, (err, stdout, stderr) => {
        resolve({ code: err ? (typeof err.code === 'number' ? err.code : null) : 0, stdout, stderr });
      });
    });
    expect(stderr).toBe('');
    expect(code).toBe(0);
    const lines = stdout.trim().split('\n');
    expect(lines[0]).toBe('worker: direct call refused: ERR_PROTOLOOP_MAIN_THREAD_ONLY');
    expect(lines[1]).toMatch(/^worker: through the bridge: exit code 0, output: child \d+ says hello$/);
  });
});
