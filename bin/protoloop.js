#!/usr/bin/env node
// The `protoloop` command. Runs the built CLI (dist/) when the package is built, and
// the TypeScript sources directly otherwise (a clone of the repository, Node >= 22.18).
import { existsSync } from 'node:fs';

const built = new URL('../dist/cli/main.js', import.meta.url);
await import(existsSync(built) ? built.href : new URL('../src/cli/main.ts', import.meta.url).href);
