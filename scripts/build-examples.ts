/**
 * Compiles the example servers to JavaScript in dist/examples/servers/, importing the
 * built library (dist/index.js) instead of src/, so that `protoloop serve <name>` works
 * from an installed package: Node does not strip types under node_modules, and no
 * devDependency is needed at run time. Run by `npm run build`, after tsc.
 */
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import ts from 'typescript';

const from = new URL('../examples/servers/', import.meta.url);
const to = new URL('../dist/examples/servers/', import.meta.url);
mkdirSync(to, { recursive: true });

let count = 0;
for (const file of readdirSync(from).filter((f) => f.endsWith('.ts'))) {
  const source = readFileSync(new URL(file, from), 'utf8')
    // dist/examples/servers/x.js sits two levels below dist/, where src/'s output lives.
    .replace(/(['"])\.\.\/\.\.\/src\//g, '$1../../');
  const { outputText, diagnostics } = ts.transpileModule(source, {
    fileName: file,
    reportDiagnostics: true,
    compilerOptions: {
      target: ts.ScriptTarget.ES2023,
      module: ts.ModuleKind.ESNext, // ESM: the package is "type": "module"
      verbatimModuleSyntax: true,
      rewriteRelativeImportExtensions: true,
    },
  });
  if (diagnostics?.length) throw new Error(`${file}: ${ts.flattenDiagnosticMessageText(diagnostics[0]!.messageText, ' ')}`);
  writeFileSync(new URL(file.replace(/\.ts$/, '.js'), to), outputText);
  count++;
}
console.log(`dist/examples/servers: ${count} files`);
