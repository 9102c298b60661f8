/**
 * Cold start: how long a fresh `node` takes to `import('protoloop')`, against bare
 * node in the same run (issue 17: at most 70 ms on the 2-core machine). Each sample is
 * a new process; the variants take turns so that they share the machine's load; the
 * figure is the median. Measures the built package (`dist/`, what users import),
 * built first when it is missing. Also checks that none of the heavy dependencies (ws,
 * execa, fastify) is loaded by the import (they load on first use), nor piscina (the
 * executors' benchmark baseline, not a dependency).
 *
 *   npm run build && node bench/import.bench.ts
 *   BENCH_SCALE=2 node bench/import.bench.ts      # more samples
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { machine, median, table } from './lib.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const SCALE = Number(process.env.BENCH_SCALE ?? 1);
const SAMPLES = Math.max(3, Math.round(15 * SCALE));
const HEAVY = ['ws', 'execa', 'piscina', 'fastify'];

interface Variant {
  name: string;
  args: string[];
}

// In-process time of the import itself, printed by the child (wall time includes node's own start).
const timedImport = (spec: string): string =>
  `const t = performance.now(); await import(${JSON.stringify(spec)}); process.stdout.write(String(performance.now() - t));`;

const variants: Variant[] = [
  { name: 'bare node (`node -e 0`)', args: ['-e', '0'] },
  { name: "`import('protoloop')` (dist)", args: ['--input-type=module', '-e', timedImport('protoloop')] },
  { name: 'src/index.ts (type stripping)', args: ['--input-type=module', '-e', timedImport('./src/index.ts')] },
];

function sample(v: Variant): { wall: number; inner: number } {
  const t0 = performance.now();
  const r = spawnSync(process.execPath, v.args, { cwd: ROOT, encoding: 'utf8' });
  const wall = performance.now() - t0;
  if (r.status !== 0) throw new Error(`${v.name} failed: ${r.stderr}`);
  return { wall, inner: Number(r.stdout) || 0 };
}

/** The packages a cold import resolves (a resolve hook in the child reports them). */
function heavyLoaded(): string[] {
  const hook = `
    import { registerHooks } from 'node:module';
    const seen = new Set();
    registerHooks({ resolve(spec, ctx, next) {
      const r = next(spec, ctx);
      const m = /node_modules\\/((?:@[^/]+\\/)?[^/]+)\\//.exec(r.url);
      if (m) seen.add(m[1]);
      return r;
    } });
    await import('protoloop');
    process.stdout.write(JSON.stringify([...seen]));`;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', hook], { cwd: ROOT, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`the package check failed: ${r.stderr}`);
  return (JSON.parse(r.stdout) as string[]).filter((p) => HEAVY.includes(p));
}

if (!existsSync(new URL('../dist/index.js', import.meta.url))) {
  // A fresh checkout (`npm run bench` runs every bench): build the package first.
  console.log('dist/index.js is missing: running `npm run build` (this bench measures the built package)...');
  const built = spawnSync('npm', ['run', 'build'], { cwd: fileURLToPath(new URL('..', import.meta.url)), stdio: 'inherit' });
  if (built.status !== 0 || !existsSync(new URL('../dist/index.js', import.meta.url))) {
    console.error('`npm run build` failed: this bench measures the built package.');
    process.exit(1);
  }
}

const results = variants.map(() => ({ wall: [] as number[], inner: [] as number[] }));
for (let i = 0; i < SAMPLES; i++) {
  variants.forEach((v, j) => {
    const s = sample(v);
    results[j]!.wall.push(s.wall);
    results[j]!.inner.push(s.inner);
  });
  process.stderr.write(`\rsample ${i + 1}/${SAMPLES}`);
}
process.stderr.write('\n');

const bare = median(results[0]!.wall);
const rows = variants.map((v, j) => {
  const wall = median(results[j]!.wall);
  const inner = j === 0 ? '-' : median(results[j]!.inner).toFixed(1);
  return [v.name, wall.toFixed(1), j === 0 ? '-' : (wall - bare).toFixed(1), inner];
});
const heavy = heavyLoaded();
const dist = median(results[1]!.wall);

console.log(`Cold start, ${machine()}, median of ${SAMPLES} fresh processes per row:\n`);
console.log(table(['what', 'process wall (ms)', 'over bare node (ms)', 'import() itself (ms)'], rows));
console.log(`\nHeavy dependencies loaded by import('protoloop'): ${heavy.length === 0 ? 'none' : heavy.join(', ')}`);
console.log(`Target (issue 17): import('protoloop') process at most 70 ms: ${dist <= 70 ? 'met' : 'NOT met'} (${dist.toFixed(1)} ms; bare node ${bare.toFixed(1)} ms).`);
