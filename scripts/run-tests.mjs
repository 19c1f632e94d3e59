#!/usr/bin/env node
// Runs the test suite with node's built-in runner (Node 20 has no glob support in --test).
//   --unit   only the unit tests (files beside the code under */src/); they need nothing installed
// Every other *.test.ts (dataplane/test, operator/test, charts, e2e) starts the real parts it needs.
// e2e/containers runs only when named (scripts/test.sh does, after scripts/build-image.sh).
import { readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const repo = fileURLToPath(new URL('..', import.meta.url));
const args = process.argv.slice(2);
const unitOnly = args.includes('--unit');
const filters = args.filter((a) => !a.startsWith('--'));

function walk(dir, out) {
  for (const name of readdirSync(dir)) {
    if (name === 'node_modules' || name === 'dist' || name.startsWith('.')) continue;
    const path = join(dir, name);
    if (statSync(path).isDirectory()) walk(path, out);
    else if (name.endsWith('.test.ts')) out.push(relative(repo, path));
  }
  return out;
}

let files = ['common', 'dataplane', 'operator', 'charts', 'e2e', 'bench']
  .flatMap((d) => {
    try {
      return walk(join(repo, d), []);
    } catch {
      return [];
    }
  })
  .sort();
if (unitOnly) files = files.filter((f) => /\/src\//.test(f));
if (filters.length) files = files.filter((f) => filters.some((x) => f.includes(x)));
// The container tests need the images built first: scripts/test.sh runs them last, by name.
else files = files.filter((f) => !f.startsWith('e2e/containers/'));
// Unit tests first: they fail fast and cheaply.
files.sort((a, b) => Number(!/\/src\//.test(a)) - Number(!/\/src\//.test(b)) || a.localeCompare(b));
if (files.length === 0) {
  console.error('run-tests: no test files matched');
  process.exit(1);
}
// spec for people, then one closing line "node22: N passed, N failed, N skipped" per run.
const summary = join(repo, 'scripts/test-summary-reporter.mjs');
const result = spawnSync(
  process.execPath,
  [
    ...['--import', 'tsx', '--test'],
    ...['--test-reporter=spec', '--test-reporter-destination=stdout'],
    ...[`--test-reporter=${summary}`, '--test-reporter-destination=stdout'],
    ...files,
  ],
  { cwd: repo, stdio: 'inherit' },
);
process.exit(result.status ?? 1);
