/**
 * The runtime import graph of src/: every `import`/`export ... from` that survives
 * type erasure (type-only imports and `import { type X }` bindings are left out),
 * with the folder rules of the layout checked against it. Used by
 * test/layout.test.ts and runnable as `node scripts/import-graph.ts` to print
 * what breaks the rules.
 *
 * The rules:
 * - a folder imports at run time only from folders before it in {@link LAYERS};
 * - no runtime import cycle;
 * - `import()` appears in one module only, {@link LAZY_MODULE} (src/loop/lazy.ts): it
 *   loads the areas above the loop on behalf of the Loop's I/O methods (so its
 *   dynamic imports may point up, and only its), and the heavy dependencies (ws,
 *   execa, piscina) on first use. Anything else that loads lazily goes through it.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import ts from 'typescript';

/** The folders of src/, lowest first: a folder may import at run time only from folders before it. */
export const LAYERS: readonly string[] = [
  'errors.ts',
  'loop',
  'concurrency',
  'executors',
  'protocols',
  'transports',
  'streams',
  'subprocess',
  'fastify',
  'testing',
  'cluster',
  'cli',
  'index.ts',
];

/** The one module allowed to call `import()` (relative to src/). */
export const LAZY_MODULE = 'loop/lazy.ts';

function listTs(dir: string): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...listTs(p));
    else if (entry.name.endsWith('.ts') && !entry.name.endsWith('.d.ts')) out.push(p);
  }
  return out;
}

function runtimeSpecifiers(file: string): { spec: string; dynamic: boolean }[] {
  const src = ts.createSourceFile(file, readFileSync(file, 'utf8'), ts.ScriptTarget.Latest, true);
  const out: { spec: string; dynamic: boolean }[] = [];
  const visit = (node: ts.Node): void => {
    if (ts.isImportDeclaration(node) && ts.isStringLiteral(node.moduleSpecifier)) {
      const clause = node.importClause;
      let typeOnly = clause?.isTypeOnly ?? false;
      if (clause && !typeOnly && !clause.name && clause.namedBindings && ts.isNamedImports(clause.namedBindings)) {
        const els = clause.namedBindings.elements;
        typeOnly = els.length > 0 && els.every((e) => e.isTypeOnly);
      }
      if (!typeOnly) out.push({ spec: node.moduleSpecifier.text, dynamic: false });
    } else if (ts.isExportDeclaration(node) && node.moduleSpecifier && ts.isStringLiteral(node.moduleSpecifier)) {
      let typeOnly = node.isTypeOnly;
      if (!typeOnly && node.exportClause && ts.isNamedExports(node.exportClause)) {
        const els = node.exportClause.elements;
        typeOnly = els.length > 0 && els.every((e) => e.isTypeOnly);
      }
      if (!typeOnly) out.push({ spec: node.moduleSpecifier.text, dynamic: false });
    } else if (
      ts.isCallExpression(node) &&
      node.expression.kind === ts.SyntaxKind.ImportKeyword &&
      node.arguments[0] &&
      ts.isStringLiteral(node.arguments[0])
    ) {
      out.push({ spec: node.arguments[0].text, dynamic: true });
    }
    ts.forEachChild(node, visit);
  };
  visit(src);
  return out;
}

export interface ImportGraph {
  /** file (relative to src/) -> files it imports statically at run time */
  static: Map<string, string[]>;
  /** file -> what it loads with a dynamic import(): files (relative to src/) and packages */
  dynamic: Map<string, string[]>;
}

export function importGraph(srcDir: string): ImportGraph {
  const root = resolve(srcDir);
  const graph: ImportGraph = { static: new Map(), dynamic: new Map() };
  for (const file of listTs(root)) {
    const from = relative(root, file);
    const st: string[] = [];
    const dy: string[] = [];
    for (const { spec, dynamic } of runtimeSpecifiers(file)) {
      if (!spec.startsWith('.')) {
        if (dynamic) dy.push(spec);
        continue;
      }
      const target = relative(root, resolve(dirname(file), spec));
      (dynamic ? dy : st).push(target);
    }
    graph.static.set(from, st);
    graph.dynamic.set(from, dy);
  }
  return graph;
}

export function layerOf(file: string): number {
  const top = file.split('/')[0]!;
  const i = LAYERS.indexOf(top);
  if (i < 0) throw new Error(`src/${file} is in no known folder (${LAYERS.join(', ')})`);
  return i;
}

/** Static runtime imports that go up or sideways across folders. */
export function layerViolations(graph: ImportGraph): string[] {
  const out: string[] = [];
  for (const [from, tos] of graph.static) {
    for (const to of tos) {
      const a = layerOf(from);
      const b = layerOf(to);
      if (a !== b && b > a) out.push(`${from} -> ${to}`);
    }
  }
  return out;
}

/** Dynamic imports outside {@link LAZY_MODULE}: `file -> what it loads`. */
export function dynamicImportViolations(graph: ImportGraph): string[] {
  const out: string[] = [];
  for (const [from, tos] of graph.dynamic) {
    if (from === LAZY_MODULE) continue;
    for (const to of tos) out.push(`${from} -> ${to}`);
  }
  return out;
}

/** Cycles of the static runtime graph (strongly connected components of more than one file, or a self-import). */
export function cycles(graph: ImportGraph): string[][] {
  let index = 0;
  const idx = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const on = new Set<string>();
  const out: string[][] = [];
  const strong = (v: string): void => {
    idx.set(v, index);
    low.set(v, index);
    index++;
    stack.push(v);
    on.add(v);
    for (const w of graph.static.get(v) ?? []) {
      if (!idx.has(w)) {
        strong(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (on.has(w)) {
        low.set(v, Math.min(low.get(v)!, idx.get(w)!));
      }
    }
    if (low.get(v) === idx.get(v)) {
      const comp: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        on.delete(w);
        comp.push(w);
      } while (w !== v);
      if (comp.length > 1 || (graph.static.get(v) ?? []).includes(v)) out.push(comp.sort());
    }
  };
  for (const v of graph.static.keys()) if (!idx.has(v)) strong(v);
  return out;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const graph = importGraph(new URL('../src', import.meta.url).pathname);
  const v = layerViolations(graph);
  const c = cycles(graph);
  const d = dynamicImportViolations(graph);
  for (const line of v) console.log(`upward import: ${line}`);
  for (const comp of c) console.log(`cycle (${comp.length}): ${comp.join(' ')}`);
  for (const line of d) console.log(`import() outside ${LAZY_MODULE}: ${line}`);
  console.log(`${graph.static.size} files, ${v.length} upward imports, ${c.length} cycles, ${d.length} dynamic imports outside ${LAZY_MODULE}`);
  process.exitCode = v.length + c.length + d.length > 0 ? 1 : 0;
}
