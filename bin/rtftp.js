#!/usr/bin/env node
// In a checkout (TypeScript sources present) runs the sources through tsx, so a stale
// build can never shadow them; in the image (only `npm run build` output) runs dist/.
import { existsSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';

const source = fileURLToPath(new URL('../dataplane/src/main.ts', import.meta.url));
const built = fileURLToPath(new URL('../dist/dataplane/src/main.js', import.meta.url));
if (existsSync(source)) {
  const { register } = await import('tsx/esm/api');
  register();
  await import(pathToFileURL(source).href);
} else {
  await import(pathToFileURL(built).href);
}
