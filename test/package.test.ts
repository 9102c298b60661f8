// The package as npm publishes it: `npm pack`, installed into a fresh project that has
// only protoloop's own dependencies (linked from this checkout's node_modules: hermetic,
// no network) plus fastify for protoloop/fastify. Its .d.ts must compile in a strict
// consumer (skipLibCheck: false; nodenext and bundler resolution), the three entry
// points (protoloop, protoloop/fastify, protoloop/testing) must import, `protoloop serve` must work from node_modules, and an old Node must get
// one clear line.
import { execFile, execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const root = fileURLToPath(new URL('../', import.meta.url));
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { dependencies: Record<string, string> };
const dir = mkdtempSync(join(tmpdir(), 'protoloop-pack-'));
const consumer = join(dir, 'consumer');
const nm = join(consumer, 'node_modules');
const env = { ...process.env, PATH: `${dirname(process.execPath)}:${join(root, 'node_modules/.bin')}:${process.env.PATH ?? ''}` };

// .ci/run builds dist/ just before the tests and says so: no need to build it again.
const distFresh = process.env.PROTOLOOP_DIST_FRESH === '1';
// The declarations are checked by TypeScript, the same on every Node: once, on the pinned 24.
const onPinnedNode = process.versions.node.startsWith('24.');

beforeAll(() => {
  // dist/ as `npm run build` makes it (library, declarations, compiled examples).
  if (!distFresh) {
    execFileSync(process.execPath, [join(root, 'node_modules/typescript/bin/tsc'), '-p', 'tsconfig.build.json'], { cwd: root, env });
    execFileSync(process.execPath, ['scripts/build-examples.ts'], { cwd: root, env });
  }
  const [packed] = JSON.parse(execFileSync('npm', ['pack', '--json', '--ignore-scripts', '--pack-destination', dir], { cwd: root, env, encoding: 'utf8' })) as [{ filename: string }];
  mkdirSync(nm, { recursive: true });
  execFileSync('tar', ['-xzf', join(dir, packed.filename), '-C', nm]);
  renameSync(join(nm, 'package'), join(nm, 'protoloop'));
  // Only what an install of protoloop brings, plus what the consumer itself installs.
  for (const name of [...Object.keys(pkg.dependencies), 'fastify', '@types/node']) {
    mkdirSync(dirname(join(nm, name)), { recursive: true });
    symlinkSync(join(root, 'node_modules', name), join(nm, name), 'dir');
  }
  writeFileSync(join(consumer, 'package.json'), JSON.stringify({ name: 'consumer', type: 'module', private: true }));
  writeFileSync(
    join(consumer, 'app.ts'),
    `import { run, sleep, taskGroup, getRunningLoop, Protocol, ConnectionRefusedError, type Transport, type Task, type Loop } from 'protoloop';
import { protoloopFastify, serveFastify, type FastifyServer } from 'protoloop/fastify';
import { MemoryNetwork, VirtualClock } from 'protoloop/testing';
import Fastify from 'fastify';

class Echo extends Protocol {
  #t: Transport | null = null;
  override connectionMade(t: Transport): void { this.#t = t; }
  override dataReceived(data: Buffer): void { this.#t?.write(data); }
}

export async function main(): Promise<number> {
  return run(async () => {
    const loop: Loop = getRunningLoop();
    const server = await loop.createServer(() => new Echo(), { host: '127.0.0.1', port: 0 });
    server.close();
    const tasks: Task<number>[] = await taskGroup(async (tg) => [tg.createTask(() => sleep(1, 1))]);
    const app = Fastify();
    await app.register(protoloopFastify);
    const http: FastifyServer = await serveFastify(app, { host: '127.0.0.1', port: 0 });
    await app.close();
    void http;
    const clock: VirtualClock = new VirtualClock();
    const network = new MemoryNetwork();
    void clock;
    void network;
    return tasks[0]!.result() + (new ConnectionRefusedError() instanceof Error ? 1 : 0);
  });
}
`,
  );
}, 180_000);

afterAll(() => rmSync(dir, { recursive: true, force: true }));

function typeErrors(moduleResolution: 'nodenext' | 'bundler'): string[] {
  const options: ts.CompilerOptions = {
    strict: true,
    skipLibCheck: false,
    noEmit: true,
    target: ts.ScriptTarget.ES2023,
    module: moduleResolution === 'nodenext' ? ts.ModuleKind.NodeNext : ts.ModuleKind.ESNext,
    moduleResolution: moduleResolution === 'nodenext' ? ts.ModuleResolutionKind.NodeNext : ts.ModuleResolutionKind.Bundler,
    types: ['node'],
  };
  const program = ts.createProgram([join(consumer, 'app.ts')], options);
  return ts.getPreEmitDiagnostics(program).map((d) => {
    const where = d.file ? `${d.file.fileName.slice(consumer.length + 1)}: ` : '';
    return `${where}TS${d.code} ${ts.flattenDiagnosticMessageText(d.messageText, ' ')}`;
  });
}

function node(args: string[], bin = process.execPath): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve) => {
    execFile(bin, args, { cwd: consumer, timeout: 30_000 }, (err, stdout, stderr) => {
      resolve({ code: err === null ? 0 : typeof err.code === 'number' ? err.code : null, out: stdout + stderr });
    });
  });
}

describe('the package from npm pack', () => {
  it('ships the licence, the built library, declarations and compiled examples, not the tests', () => {
    const p = join(nm, 'protoloop');
    for (const f of ['LICENSE', 'README.md', 'dist/index.js', 'dist/index.d.ts', 'dist/fastify/index.d.ts', 'dist/examples/servers/echo.js', 'bin/protoloop.js']) {
      expect(existsSync(join(p, f)), f).toBe(true);
    }
    expect(existsSync(join(p, 'test'))).toBe(false);
  });

  // Checking every .d.ts (Node's, Fastify's, ours) takes tens of seconds on a busy machine.
  it.skipIf(!onPinnedNode).each(['nodenext', 'bundler'] as const)('its .d.ts compile in a strict consumer (skipLibCheck: false, moduleResolution %s)', { timeout: 180_000 }, (resolution) => {
    expect(typeErrors(resolution)).toEqual([]);
  });

  it('the three entry points import and run from node_modules', async () => {
    const script = `import { run, sleep } from 'protoloop'; import { protoloopFastify } from 'protoloop/fastify'; import { VirtualClock } from 'protoloop/testing';
console.log(await run(async () => { await sleep(1); return [typeof protoloopFastify, typeof VirtualClock].join(' '); }));`;
    const r = await node(['--input-type=module', '-e', script]);
    expect(r).toEqual({ code: 0, out: 'function function\n' });
  });

  it.each(['echo', 'http'])('`protoloop serve %s` runs from the installed package and stops on SIGTERM', async (example) => {
    const child = spawn(process.execPath, [join(nm, 'protoloop/bin/protoloop.js'), 'serve', example, '--port', '0'], { cwd: consumer, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
    try {
      await new Promise<void>((resolve, reject) => {
        const check = (d: Buffer): void => {
          out += d.toString();
          if (/listening on /.test(out)) resolve();
        };
        child.stdout.on('data', check);
        child.stderr.on('data', check);
        void exited.then((code) => reject(new Error(`exited with ${code}: ${out}`)));
      });
      expect(out).toMatch(new RegExp(`protoloop serve ${example}: pid \\d+`));
      child.kill('SIGTERM');
      expect(await exited).toBe(0);
    } finally {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    }
  });

  // The machine's own Node is v20: importing protoloop there must say what it needs.
  const oldNode = ['/usr/bin/node', '/usr/local/bin/node'].find((p) => {
    if (!existsSync(p)) return false;
    const v = execFileSync(p, ['--version'], { encoding: 'utf8' }).trim();
    return Number(v.slice(1).split('.')[0]) < 22;
  });
  it.skipIf(oldNode === undefined)('on Node < 22 the import throws one clear error naming the version it needs', async () => {
    const r = await node(['--input-type=module', '-e', `try { await import('protoloop'); } catch (e) { console.log(e.message); process.exit(3); }`], oldNode);
    expect(r.code).toBe(3);
    expect(r.out).toMatch(/^protoloop needs Node\.js 22\.19 or later \(22, 24 and 26 are supported\); this is Node 2\d\.\d+\.\d+\n$/);
    const cli = await node([join(nm, 'protoloop/bin/protoloop.js'), '--version'], oldNode);
    expect(cli).toMatchObject({ code: 1 });
    expect(cli.out).toMatch(/^protoloop: needs Node\.js 22\.19 or later .*\n$/);
  });
});
