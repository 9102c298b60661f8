// ws's optional native helpers (bufferutil; utf-8-validate is superseded by Node's
// buffer.isUtf8): everything works with them and without them (WS_NO_BUFFER_UTIL /
// WS_NO_UTF_8_VALIDATE make ws fall back to its JavaScript code).
import { execFile } from 'node:child_process';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

/** Whether the optional dependency installed here (it may not, on exotic platforms). */
function installed(): boolean {
  try {
    createRequire(createRequire(import.meta.url).resolve('ws'))('bufferutil');
    return true;
  } catch {
    return false;
  }
}

const SCRIPT = fileURLToPath(new URL('./fixtures/echo-roundtrip.ts', import.meta.url));

async function roundTrip(env: Record<string, string>): Promise<{ ok: boolean; bufferutil: boolean }> {
  const { WS_NO_BUFFER_UTIL: _a, WS_NO_UTF_8_VALIDATE: _b, ...base } = process.env;
  const { stdout } = await promisify(execFile)(process.execPath, [SCRIPT], { env: { ...base, ...env }, timeout: 20_000 });
  return JSON.parse(stdout.trim().split('\n').at(-1)!) as { ok: boolean; bufferutil: boolean };
}

describe('ws native helpers', () => {
  it('uses bufferutil when it is installed', async () => {
    expect(await roundTrip({})).toEqual({ ok: true, bufferutil: installed() });
  });

  it('falls back to JavaScript when told to, with the same results', async () => {
    expect(await roundTrip({ WS_NO_BUFFER_UTIL: '1', WS_NO_UTF_8_VALIDATE: '1' })).toEqual({ ok: true, bufferutil: false });
  });
});
