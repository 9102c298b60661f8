// docs/testing.md: the complete example passes under node:test and under vitest, as
// written (imports of 'protoloop' and 'protoloop/testing' mapped to the sources).
// test/readme.test.ts type-checks and runs every block of the docs on its own.
import { execFile } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';

const run = promisify(execFile);
const root = fileURLToPath(new URL('../../', import.meta.url));
const doc = readFileSync(join(root, 'docs/testing.md'), 'utf8');
const blocks = [...doc.matchAll(/```ts\n([\s\S]*?)```/g)].map((m) => m[1]!);
const dir = join(root, 'test/testing', `docs-tmp-${process.pid}`);
mkdirSync(dir, { recursive: true });
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function mapImports(code: string): string {
  return code
    .replaceAll("from 'protoloop/testing'", `from '${join(root, 'src/testing/index.ts')}'`)
    .replaceAll("from 'protoloop'", `from '${join(root, 'src/index.ts')}'`);
}

/** The environment of a child that is not itself a vitest worker. */
function plainEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('VITEST') && k !== 'NODE_ENV' && k !== 'TEST') env[k] = v;
  return env;
}

describe('docs/testing.md', () => {
  it('has the complete example and the reference blocks', () => {
    expect(blocks.length).toBeGreaterThanOrEqual(5);
    expect(blocks.filter((b) => b.includes("await import('node:test')"))).toHaveLength(1);
  });

  it('the complete example passes under node:test', async () => {
    const i = blocks.findIndex((b) => b.includes("await import('node:test')"));
    const file = join(dir, 'example-node.test.ts');
    writeFileSync(file, mapImports(blocks[i]!));
    const { stdout } = await run(process.execPath, ['--test', '--test-reporter=tap', file], { cwd: root, env: plainEnv(), timeout: 60_000 });
    expect(stdout).toMatch(/^# pass 1$/m);
  }, 90_000);

  it('the complete example passes under vitest', async () => {
    const i = blocks.findIndex((b) => b.includes("await import('node:test')"));
    const file = join(dir, 'example-vitest.test.ts');
    writeFileSync(file, mapImports(blocks[i]!));
    const vitest = join(root, 'node_modules/vitest/vitest.mjs');
    const { stdout } = await run(process.execPath, [vitest, 'run', file, '--reporter=verbose'], { cwd: root, env: plainEnv(), timeout: 90_000 });
    expect(stdout).toMatch(/1 passed/);
  }, 120_000);
});
