/**
 * The layout's rules, checked on the source (scripts/import-graph.ts): folders import
 * only folders below them at run time, no runtime import cycle, import() only in
 * src/loop/lazy.ts, and no Loop method installed from outside the Loop class.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { cycles, dynamicImportViolations, importGraph, layerViolations, LAZY_MODULE } from '../scripts/import-graph.ts';

const SRC = fileURLToPath(new URL('../src', import.meta.url));
const graph = importGraph(SRC);

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile() && e.name.endsWith('.ts'))
    .map((e) => join(e.parentPath, e.name));
}

describe('layout', () => {
  it('sees the whole tree', () => {
    expect(graph.static.size).toBeGreaterThan(50);
    expect(graph.static.has(LAZY_MODULE)).toBe(true);
  });

  it('has no upward runtime import', () => {
    expect(layerViolations(graph)).toEqual([]);
  });

  it('has no runtime import cycle', () => {
    expect(cycles(graph)).toEqual([]);
  });

  it('calls import() only in src/loop/lazy.ts, which loads the areas and ws/execa', () => {
    expect(dynamicImportViolations(graph)).toEqual([]);
    const lazy = graph.dynamic.get(LAZY_MODULE)!;
    expect(lazy).toEqual(expect.arrayContaining(['ws', 'execa', 'transports/net/loop-methods.ts', 'executors/loop-methods.ts']));
  });

  it('adds no Loop method from outside the class (no declare-module blocks on the loop, no prototype installs)', () => {
    const offenders = sources(SRC).filter((f) => {
      const text = readFileSync(f, 'utf8');
      return /declare module '[./]*(loop\/)?loop\.ts'/.test(text) || /Loop\.prototype\.\w+\s*=/.test(text);
    });
    expect(offenders).toEqual([]);
  });
});
