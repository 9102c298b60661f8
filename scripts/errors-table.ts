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
    rows.push({ name, base, codes, summary });
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
    'This table is generated from `src/errors.ts` (`node scripts/errors-table.ts --write`);',
    '`test/errors.test.ts` fails when they disagree.',
    '',
    '| class | extends | code | when |',
    '| --- | --- | --- | --- |',
  ];
  for (const r of rows) {
    const codes = r.codes.length ? r.codes.map((c) => `\`${c}\``).join(', ') : '(from the subclass)';
    lines.push(`| \`${r.name}\` | \`${r.base}\` | ${codes} | ${r.summary.replace(/\|/g, '\\|')} |`);
  }
  return lines.join('\n') + '\n';
}

if (process.argv.includes('--write')) {
  writeFileSync(new URL('../docs/errors.md', import.meta.url), renderErrorsDoc(readErrorTable()));
  console.log('wrote docs/errors.md');
}
