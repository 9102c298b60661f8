/**
 * Small helpers shared by the benchmarks: machine description, timing, markdown.
 */
import { execFileSync } from 'node:child_process';
import { cpus, totalmem } from 'node:os';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';

/** The system Python (where Debian's python3-uvloop installs), else whatever `python3` is on PATH. */
export const PYTHON = existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3';

export function machine(): string {
  const cpu = cpus()[0]?.model ?? 'unknown CPU';
  return `${cpus().length} cores (${cpu}), ${(totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.version}, ${process.platform}/${process.arch}`;
}

export function pythonVersion(python = PYTHON): string | null {
  try {
    return execFileSync(python, ['--version'], { encoding: 'utf8' }).trim();
  } catch {
    return null;
  }
}

export function hasPythonModule(mod: string, python = PYTHON): boolean {
  try {
    execFileSync(python, ['-c', `import ${mod}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** Runs a python script and parses the last JSON line it prints. */
export function runPythonJson(args: string[], python = PYTHON): Record<string, number> {
  const out = execFileSync(python, args, { encoding: 'utf8', timeout: 120_000 });
  const line = out.trim().split('\n').at(-1)!;
  return JSON.parse(line) as Record<string, number>;
}

export function fmtRate(n: number): string {
  if (n >= 1e6) return `${(n / 1e6).toFixed(2)}M/s`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(1)}k/s`;
  return `${n.toFixed(0)}/s`;
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

export function table(headers: string[], rows: (string | number)[][]): string {
  const line = (cells: (string | number)[]): string => `| ${cells.join(' | ')} |`;
  return [line(headers), line(headers.map(() => '---')), ...rows.map(line)].join('\n');
}

/**
 * Whether results are written to bench/results/: only with `--write` (`npm run bench --
 * --write`), so that a run to look at numbers leaves the committed files alone.
 */
export const WRITE = process.argv.includes('--write') || process.env.BENCH_WRITE === '1';

/** Writes bench/results/<area>.md with `--write`; without, says where it would have gone. */
/** In bench/results/<area>.md, what follows this line is kept when the bench writes the file again. */
export const NOTES_MARKER = '<!-- notes below: kept when the bench rewrites this file -->';

export function writeResults(area: string, markdown: string): void {
  if (!WRITE) {
    console.log(`(bench/results/${area}.md left as it is: add --write to update it)`);
    return;
  }
  const dir = new URL('./results/', import.meta.url);
  mkdirSync(dir, { recursive: true });
  const file = new URL(`${area}.md`, dir);
  // Hand-written notes (profiles, before/after comparisons) below the marker survive a rerun.
  const old = existsSync(file) ? readFileSync(file, 'utf8') : '';
  const at = old.indexOf(NOTES_MARKER);
  writeFileSync(file, at < 0 ? markdown : `${markdown.trimEnd()}\n\n${old.slice(at)}`);
  console.log(`wrote bench/results/${area}.md`);
}

/** One progress line per measured cell: `[3/21] tasks: 1.23M/s`. */
export function progress(done: number, total: number, what: string): void {
  console.log(`[${String(done).padStart(String(total).length)}/${total}] ${what}`);
}
