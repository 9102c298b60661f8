#!/usr/bin/env node
// The `protoloop` command. In a clone of the repository it runs the TypeScript sources
// (Node strips the types; a stale dist/ cannot get in the way); installed as a package
// (Node does not strip types under node_modules) it runs the built dist/.
import { existsSync } from 'node:fs';

// Said here in one line, before any import can fail in a less readable way.
const [major = 0, minor = 0] = process.versions.node.split('.').map(Number);
if (major < 22 || (major === 22 && minor < 19)) {
  process.stderr.write(`protoloop: needs Node.js 22.19 or later (22, 24 and 26 are supported); this is Node ${process.versions.node}\n`);
  process.exit(1);
}

const source = new URL('../src/cli/main.ts', import.meta.url);
const built = new URL('../dist/cli/main.js', import.meta.url);
const fromSource = !import.meta.url.includes('/node_modules/') && existsSync(source) && Boolean(process.features.typescript);
await import((fromSource || !existsSync(built) ? source : built).href);
