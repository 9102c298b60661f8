#!/usr/bin/env node
// The `protoloop` command. In a clone of the repository it runs the TypeScript sources
// (Node strips the types; a stale dist/ cannot get in the way); installed as a package
// (Node does not strip types under node_modules) it runs the built dist/.
import { existsSync } from 'node:fs';

const source = new URL('../src/cli/main.ts', import.meta.url);
const built = new URL('../dist/cli/main.js', import.meta.url);
const fromSource = !import.meta.url.includes('/node_modules/') && existsSync(source) && Boolean(process.features.typescript);
await import((fromSource || !existsSync(built) ? source : built).href);
