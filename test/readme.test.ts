// Every ```ts block of README.md and docs/*.md as a user would paste it: each one is
// type-checked on its own (with 'protoloop' and its subpaths mapped to src/), and run
// in its own child process on this Node with a time limit. A block that makes no sense
// to run (a server that runs forever) says so with `<!-- not run: reason -->` on the
// line right before its fence; it is still type-checked. A block whose first line is
// `// name.ts` (a comment naming a file, as in `// hash.ts: runs in the worker`) is also
// saved under that name beside the others, so that the blocks after it can import it or
// start a worker on it, as the user would with two files.
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import ts from 'typescript';
import { afterAll, describe, expect, it } from 'vitest';

const root = fileURLToPath(new URL('../', import.meta.url));
const RUN_LIMIT_MS = 20_000;

export interface Block {
  /** `README.md:12`: the file and the line of the opening fence. */
  where: string;
  code: string;
  /** The reason given by `<!-- not run: reason -->`, or undefined when the block runs. */
  notRun: string | undefined;
}

/** Extracts the ```ts blocks of a Markdown text. */
export function extractBlocks(markdown: string, file: string): Block[] {
  const lines = markdown.split('\n');
  const blocks: Block[] = [];
  for (let i = 0; i < lines.length; i++) {
    if (!/^```ts\s*$/.test(lines[i]!)) continue;
    const start = i;
    const body: string[] = [];
    for (i++; i < lines.length && !/^```\s*$/.test(lines[i]!); i++) body.push(lines[i]!);
    let prev = start - 1;
    while (prev >= 0 && lines[prev]!.trim() === '') prev--;
    const marker = prev >= 0 ? /^<!--\s*not run:\s*(.+?)\s*-->$/.exec(lines[prev]!.trim()) : null;
    blocks.push({ where: `${file}:${start + 1}`, code: body.join('\n'), notRun: marker?.[1] });
  }
  return blocks;
}

/** The source file an import of `protoloop` or `protoloop/<sub>` stands for. */
function entryFor(sub: string | undefined): string {
  return join(root, 'src', sub === undefined ? 'index.ts' : join(sub, 'index.ts'));
}

const docFiles = ['README.md', ...readdirSync(join(root, 'docs')).filter((f) => f.endsWith('.md')).map((f) => `docs/${f}`)];
const blocks = docFiles.flatMap((f) => extractBlocks(readFileSync(join(root, f), 'utf8'), f));

// One directory for all blocks, with the project's node_modules, so that 'fastify' and
// the Node types resolve as they would in a user's project.
const dir = mkdtempSync(join(tmpdir(), 'protoloop-readme-'));
symlinkSync(join(root, 'node_modules'), join(dir, 'node_modules'), 'dir');
writeFileSync(join(dir, 'package.json'), JSON.stringify({ type: 'module' }));
mkdirSync(join(dir, 'run'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** The file a block names on its first line (`// hash.ts ...`), if it names one. */
export function namedFile(code: string): string | undefined {
  return /^\/\/ ([\w-]+\.ts)(?![\w.])/.exec(code)?.[1];
}

const fileOf = new Map<Block, string>();
const namedBy = new Map<string, Block>();
blocks.forEach((b, i) => {
  const name = `block-${String(i).padStart(3, '0')}-${b.where.replace(/[^\w]+/g, '_')}.ts`;
  fileOf.set(b, join(dir, name));
  // `export {}` keeps each block a module of its own, as a user's file would be.
  writeFileSync(join(dir, name), `${b.code}\nexport {};\n`);
  const named = namedFile(b.code);
  if (named !== undefined) {
    const earlier = namedBy.get(named);
    if (earlier !== undefined && earlier.code !== b.code) throw new Error(`${b.where} and ${earlier.where} both define ${named}, differently`);
    namedBy.set(named, b);
    writeFileSync(join(dir, named), `${b.code}\nexport {};\n`);
    writeFileSync(join(dir, 'run', named), `${runnableSource(b.code)}\nexport {};\n`);
  }
});

const subpaths = ['fastify', 'testing', 'cluster'].filter((s) => existsSync(entryFor(s)));
writeFileSync(
  join(dir, 'tsconfig.json'),
  JSON.stringify({
    extends: join(root, 'tsconfig.json'),
    compilerOptions: {
      noEmit: true,
      paths: Object.fromEntries([['protoloop', [entryFor(undefined)]], ...subpaths.map((s) => [`protoloop/${s}`, [entryFor(s)]])]),
    },
    include: ['*.ts'],
  }),
);

let diagnostics: Map<string, string[]> | undefined;
/** Type-checks every block in one program; returns the messages per block file. */
function typeCheck(): Map<string, string[]> {
  if (diagnostics !== undefined) return diagnostics;
  const parsed = ts.getParsedCommandLineOfConfigFile(join(dir, 'tsconfig.json'), {}, {
    ...ts.sys,
    onUnRecoverableConfigFileDiagnostic: (d) => {
      throw new Error(ts.flattenDiagnosticMessageText(d.messageText, '\n'));
    },
  })!;
  const program = ts.createProgram(parsed.fileNames, parsed.options);
  diagnostics = new Map();
  for (const d of ts.getPreEmitDiagnostics(program)) {
    const file = d.file?.fileName ?? '(global)';
    const pos = d.file !== undefined && d.start !== undefined ? d.file.getLineAndCharacterOfPosition(d.start) : undefined;
    const text = `${pos ? `line ${pos.line + 1}: ` : ''}${ts.flattenDiagnosticMessageText(d.messageText, ' ')}`;
    const list = diagnostics.get(file) ?? [];
    list.push(text);
    diagnostics.set(file, list);
  }
  return diagnostics;
}

/** The block with its protoloop imports pointing at src/, so that node runs it as is. */
function runnableSource(code: string): string {
  return code.replace(/(['"])protoloop(?:\/(\w+))?\1/g, (_m, q: string, sub: string | undefined) => `${q}${pathToFileURL(entryFor(sub)).href}${q}`);
}

// A few children at a time: the machine has 2 cores and other suites run beside this one.
let running = 0;
const waiting: (() => void)[] = [];
async function limited<T>(fn: () => Promise<T>): Promise<T> {
  if (running >= 3) await new Promise<void>((r) => waiting.push(r));
  running++;
  try {
    return await fn();
  } finally {
    running--;
    waiting.shift()?.();
  }
}

interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  timedOut: boolean;
  output: string;
}

function runBlock(file: string): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [file], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, PROTOLOOP_DEBUG: '' } });
    let output = '';
    child.stdout.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr.on('data', (d: Buffer) => (output += d.toString()));
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, RUN_LIMIT_MS);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, timedOut, output });
    });
  });
}

describe('the ```ts blocks of README.md and docs/*.md', () => {
  it('finds the blocks, and every not-run block says why', () => {
    expect(blocks.filter((b) => b.where.startsWith('README.md')).length).toBeGreaterThan(5);
    for (const b of blocks) if (b.notRun !== undefined) expect(b.notRun.length, b.where).toBeGreaterThan(3);
  });

  for (const block of blocks) {
    it.concurrent(`${block.where}${block.notRun === undefined ? '' : ' (type-checked only)'}`, { timeout: 120_000 }, async () => {
      const file = fileOf.get(block)!;
      const problems = typeCheck().get(file) ?? [];
      expect(problems.join('\n'), `${block.where} does not type-check`).toBe('');
      if (block.notRun !== undefined) return;
      // Written beside the checked file (not over it), under run/, where the program does not look.
      const runFile = join(dir, 'run', file.slice(dir.length + 1));
      writeFileSync(runFile, `${runnableSource(block.code)}\nexport {};\n`);
      const r = await limited(() => runBlock(runFile));
      const what = r.timedOut ? `did not finish within ${RUN_LIMIT_MS} ms` : `exited with ${r.code ?? r.signal}`;
      expect(r.code === 0 && !r.timedOut, `${block.where} ${what}:\n${r.output}`).toBe(true);
    });
  }
});
