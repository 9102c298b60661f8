/**
 * Reads the error table out of src/errors.ts: each exported class, its stable code(s)
 * and the first sentence of its TSDoc. Used by `node scripts/errors-table.ts --write`
 * to produce docs/errors.md, and by test/errors.test.ts to check the two agree.
 */
import { readFileSync, writeFileSync } from 'node:fs';

export interface ErrorRow {
  name: string;
  base: string;
  codes: string[];
  summary: string;
  /** The class takes Node's `code` when it wraps an error of the OS or Node. */
  nodeCode: boolean;
}

export function readErrorTable(source = readFileSync(new URL('../src/errors.ts', import.meta.url), 'utf8')): ErrorRow[] {
  const rows: ErrorRow[] = [];
  const re = /\/\*\*((?:(?!\*\/)[\s\S])*)\*\/\s*export class (\w+) extends (\w+)\s*\{([\s\S]*?)\n\}/g;
  for (let m = re.exec(source); m !== null; m = re.exec(source)) {
    const [, doc, name, base, body] = m as unknown as [string, string, string, string, string];
    const summary = doc
      .split('\n')
      .map((l) => l.replace(/^\s*\*\s?/, '').trim())
      .filter(Boolean)
      .join(' ')
      .replace(/\{@link (\w+)\}/g, '`$1`');
    const codes = [...new Set([...body.matchAll(/'(ERR_PROTOLOOP_[A-Z0-9_]+)'/g)].map((c) => c[1]!))];
    const nodeCode = body.includes('systemErrorInfo(') || rows.some((r) => r.name === base && r.nodeCode);
    rows.push({ name, base, codes, summary, nodeCode });
  }
  return rows;
}

export function renderErrorsDoc(rows: ErrorRow[]): string {
  const lines = [
    '# Errors',
    '',
    'Every error protoloop raises is one of these classes, exported from `protoloop`, with a',
    'stable `code`. Match on `instanceof` or on `err.code`. The families follow the question',
    '"whose fault?": *closed by you* (`TransportClosedError`), *broken by the peer*',
    '(`ConnectionResetError`, `BrokenPipeError`), *busy* (`ResourceBusyError`).',
    '',
    'An error that comes from the OS or from Node keeps Node\'s conventions: `code`, `errno` and',
    '`syscall` are Node\'s (`ECONNREFUSED`, `-111`, `connect`), so `err.code === \'EADDRINUSE\'`',
    'works as with raw `net`, while the class (`ConnectionRefusedError`, ...) says which family',
    'it belongs to; Node\'s own error is its `cause`. The `ERR_PROTOLOOP_*` code of these classes',
    'is used only when protoloop itself detected the failure (a connection that ended',
    'mid-handshake, say).',
    '',
    '```ts',
    "import { run, openConnection, ConnectionRefusedError } from 'protoloop';",
    "import { createServer, type AddressInfo } from 'node:net';",
    '',
    'await run(async () => {',
    '  // A port that was free a moment ago: nothing listens there now.',
    '  const probe = createServer().listen(0, \'127.0.0.1\');',
    "  await new Promise((resolve) => probe.once('listening', resolve));",
    '  const { port } = probe.address() as AddressInfo;',
    '  await new Promise((resolve) => probe.close(resolve));',
    '  try {',
    "    await openConnection('127.0.0.1', port);",
    '  } catch (err) {',
    '    if (!(err instanceof ConnectionRefusedError)) throw err;',
    '    console.log(err.code, err.errno, err.syscall); // ECONNREFUSED -111 connect',
    '  }',
    '});',
    '```',
    '',
    'This table is generated from `src/errors.ts` (`node scripts/errors-table.ts --write`);',
    '`test/errors.test.ts` fails when they disagree.',
    '',
    '| class | extends | code | when |',
    '| --- | --- | --- | --- |',
  ];
  for (const r of rows) {
    let codes = r.codes.length ? r.codes.map((c) => `\`${c}\``).join(', ') : '(from the subclass)';
    if (r.nodeCode) codes = `Node's \`code\` when the OS or Node reported the error; else ${codes}`;
    lines.push(`| \`${r.name}\` | \`${r.base}\` | ${codes} | ${r.summary.replace(/\|/g, '\\|')} |`);
  }
  return lines.join('\n') + '\n';
}

if (process.argv.includes('--write')) {
  writeFileSync(new URL('../docs/errors.md', import.meta.url), renderErrorsDoc(readErrorTable()));
  console.log('wrote docs/errors.md');
}
