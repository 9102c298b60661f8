/**
 * The published declarations carry no internals: tsconfig.build.json strips every
 * `@internal` member (stripInternal), and what is left still compiles in a strict
 * consumer (`skipLibCheck: false`). Builds the declarations into a scratch folder of
 * the repository (so that they resolve ws, execa, ... as an installed package does).
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const OUT = join(ROOT, 'test', `.dts-${process.pid}`);
const TSC = join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc');

function tsc(args: string[]): void {
  execFileSync(process.execPath, [TSC, ...args], { cwd: ROOT, encoding: 'utf8', stdio: 'pipe' });
}

function declarations(): Map<string, string> {
  const out = new Map<string, string>();
  for (const e of readdirSync(OUT, { withFileTypes: true, recursive: true })) {
    if (e.isFile() && e.name.endsWith('.d.ts')) out.set(join(e.parentPath, e.name).slice(OUT.length + 1), readFileSync(join(e.parentPath, e.name), 'utf8'));
  }
  return out;
}

let dts: Map<string, string>;

beforeAll(() => {
  tsc(['-p', 'tsconfig.build.json', '--emitDeclarationOnly', '--declarationMap', 'false', '--sourceMap', 'false', '--outDir', OUT]);
  dts = declarations();
}, 120_000);

afterAll(() => {
  rmSync(OUT, { recursive: true, force: true });
});

describe('published declarations', () => {
  it('are built', () => {
    expect(dts.has('index.d.ts')).toBe(true);
    expect(dts.get('loop/loop.d.ts')).toContain('createConnection');
  });

  it('contain no @internal member', () => {
    const tagged = [...dts].filter(([, text]) => text.includes('@internal')).map(([file]) => file);
    expect(tagged).toEqual([]);
  });

  it('leave out the internal-only members', () => {
    const loop = dts.get('loop/loop.d.ts')!;
    expect(loop).not.toMatch(/\breportSlow\(/);
    expect(loop).not.toMatch(/\bcaptureSourceTraceback\(/);
    expect(dts.get('loop/future.d.ts')).not.toMatch(/get state\(\)/);
    expect(dts.get('transports/websocket/transport.d.ts')).not.toMatch(/\bflush\(\): void/);
    expect(dts.get('transports/net/socket-transport.d.ts')).not.toMatch(/\bdetachSocket\(/);
    // No member of an exported class keyed by one of protoloop's internal symbols
    // (src/loop/symbols.ts). Internal interfaces between modules may keep theirs.
    const classes = ['loop/loop', 'loop/future', 'loop/task', 'loop/handle', 'loop/coroutine', 'transports/net/socket-transport', 'transports/net/server', 'transports/net/datagram', 'transports/websocket/transport', 'transports/websocket/server', 'subprocess/process', 'streams/stream-reader', 'streams/stream-writer', 'executors/thread-pool', 'executors/process-pool', 'executors/executor-base'];
    const keyed = classes.filter((f) => /\[k[A-Z]\w*\]/.test(dts.get(`${f}.d.ts`) ?? ''));
    expect(keyed).toEqual([]);
  });

  it('compile in a strict consumer (skipLibCheck false)', () => {
    const dir = join(OUT, 'consumer');
    mkdirSync(dir, { recursive: true });
    writeFileSync(
      join(dir, 'main.ts'),
      [
        "import { run, getRunningLoop, Protocol, ThreadPoolExecutor, WebSocketServer, type SocketTransport } from '../index.js';",
        'export async function main(): Promise<void> {',
        '  await run(async () => {',
        '    const loop = getRunningLoop();',
        '    const server = await loop.createServer(() => new Protocol(), { port: 0 });',
        "    const [t]: [SocketTransport, Protocol] = await loop.createConnection(() => new Protocol(), { host: '127.0.0.1', port: 1 });",
        '    t.close();',
        '    server.close();',
        '    const pool: ThreadPoolExecutor = new ThreadPoolExecutor();',
        '    const ws: WebSocketServer | null = null;',
        '    void pool; void ws;',
        '  });',
        '}',
        '',
      ].join('\n'),
    );
    writeFileSync(
      join(dir, 'tsconfig.json'),
      JSON.stringify({
        compilerOptions: { strict: true, module: 'nodenext', moduleResolution: 'nodenext', target: 'es2023', lib: ['es2024', 'esnext.disposable'], types: ['node'], skipLibCheck: false, noEmit: true },
        files: ['main.ts'],
      }),
    );
    let output = '';
    try {
      tsc(['-p', dir]);
    } catch (e) {
      output = String((e as { stdout?: string }).stdout ?? e);
    }
    expect(output).toBe('');
  }, 120_000);
});
