/**
 * `npm run bench`: runs every bench/*.bench.ts in its own process, one after the
 * other; each prints a line per measured cell as it goes, then its table. With
 * `--write` each one also writes bench/results/<area>.md, and this script gathers them
 * into bench/RESULTS.md; without it the committed files are left alone.
 *
 *   npm run bench                     # all of them, print only
 *   npm run bench -- echo loop        # only those whose name contains a word given
 *   npm run bench -- --write          # and update bench/results/ and bench/RESULTS.md
 */
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync, writeFileSync, existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { machine } from './lib.ts';

const dir = fileURLToPath(new URL('.', import.meta.url));
const write = process.argv.includes('--write');
const filters = process.argv.slice(2).filter((a) => a !== '--write');
const order = ['targets', 'loop', 'sync', 'echo', 'websocket', 'cluster', 'subprocess', 'executors', 'fastify'];
const benches = readdirSync(dir)
  .filter((f) => f.endsWith('.bench.ts'))
  .filter((f) => filters.length === 0 || filters.some((w) => f.includes(w)))
  .sort((a, b) => rank(a) - rank(b) || a.localeCompare(b));

function rank(f: string): number {
  const i = order.findIndex((o) => f.startsWith(o));
  return i < 0 ? order.length : i;
}

let failed = 0;
benches.forEach((f, i) => {
  console.log(`\n=== benchmark ${i + 1} of ${benches.length}: ${f}`);
  const t0 = Date.now();
  const r = spawnSync(process.execPath, ['--expose-gc', f, ...(write ? ['--write'] : [])], { cwd: dir, stdio: 'inherit', timeout: 10 * 60_000 });
  console.log(`=== ${f}: ${r.status === 0 ? 'done' : `failed (${r.status ?? r.signal})`} in ${((Date.now() - t0) / 1000).toFixed(0)} s`);
  if (r.status !== 0) failed++;
});
if (benches.length === 0) console.log(`no benchmark matches ${filters.join(' ')}`);

const resultsDir = `${dir}results`;
if (!write) {
  console.log('\nbench/results/ and bench/RESULTS.md left as they are (add --write to update them)');
} else if (existsSync(resultsDir)) {
  const parts = readdirSync(resultsDir)
    .filter((f) => f.endsWith('.md'))
    .sort((a, b) => rank(a) - rank(b) || a.localeCompare(b))
    .map((f) => readFileSync(`${resultsDir}/${f}`, 'utf8').trim());
  const header = `# Benchmark results

Produced by \`npm run bench -- --write\` (each section names its own command). Every ratio is
against a baseline measured in the same run on the same machine. Last full run on:
${machine()}.
`;
  writeFileSync(`${dir}RESULTS.md`, `${header}\n${parts.join('\n\n')}\n`);
  console.log(`\nwrote bench/RESULTS.md (${parts.length} sections)`);
}
process.exit(failed === 0 ? 0 : 1);
