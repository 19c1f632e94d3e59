/**
 * Production dependencies are exactly what the built code imports at run time: the build
 * (`npm run build`'s tsconfig) runs with only `npm ci --omit=dev` installed beside it, as in
 * the image. Every entry point (package.json "bin") starts (`--help`: past every static
 * import), every other built module imports, and every production dependency is imported
 * by some built module (none ships for nothing).
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { repoDir } from './helm.ts';

interface PackageJson {
  bin: Record<string, string>;
  dependencies: Record<string, string>;
  devDependencies: Record<string, string>;
}
const pkg = JSON.parse(readFileSync(join(repoDir, 'package.json'), 'utf8')) as PackageJson;

function run(cmd: string, args: string[], cwd: string, timeout = 300_000) {
  const r = spawnSync(cmd, args, { cwd, encoding: 'utf8', timeout });
  return { status: r.status, output: `${r.stdout ?? ''}${r.stderr ?? ''}${r.error ?? ''}` };
}

function jsFiles(dir: string, out: string[] = []): string[] {
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) jsFiles(path, out);
    else if (name.endsWith('.js')) out.push(path);
  }
  return out;
}

/** The packages a module imports by bare specifier (static, re-export or dynamic import). */
function importedPackages(source: string): string[] {
  const specs = [
    ...source.matchAll(/(?:^|[\s;])(?:import|export)\s[^'"]*?from\s*['"]([^'"]+)['"]/gm),
    ...source.matchAll(/(?:^|[\s;])import\s*['"]([^'"]+)['"]/gm),
    ...source.matchAll(/\bimport\(\s*['"]([^'"]+)['"]\s*\)/g),
  ].map((m) => m[1]!);
  return specs
    .filter((s) => !s.startsWith('.') && !s.startsWith('/') && !s.startsWith('node:'))
    .map((s) =>
      s
        .split('/')
        .slice(0, s.startsWith('@') ? 2 : 1)
        .join('/'),
    );
}

describe('production dependencies', { timeout: 900_000 }, () => {
  let dir: string;
  let built = false;

  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'rtftp-prod-'));
    const tsc = run(
      process.execPath,
      [
        join(repoDir, 'node_modules/typescript/bin/tsc'),
        '-p',
        'tsconfig.build.json',
        '--outDir',
        join(dir, 'dist'),
      ],
      repoDir,
    );
    assert.equal(tsc.status, 0, `tsc build failed:\n${tsc.output}`);
    for (const f of ['package.json', 'package-lock.json', 'bin'])
      cpSync(join(repoDir, f), join(dir, f), { recursive: true });
    // The npm cache usually holds every package already (setup.sh ran npm ci).
    const ci = run(
      'npm',
      ['ci', '--omit=dev', '--ignore-scripts', '--no-audit', '--no-fund', '--prefer-offline'],
      dir,
      600_000,
    );
    assert.equal(ci.status, 0, `npm ci --omit=dev failed:\n${ci.output}`);
    built = true;
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  test('no dev dependency is installed beside the build', () => {
    assert.ok(built);
    const installed = new Set(
      readdirSync(join(dir, 'node_modules')).flatMap((n) =>
        n.startsWith('@') ? readdirSync(join(dir, 'node_modules', n)).map((m) => `${n}/${m}`) : [n],
      ),
    );
    // ajv and ajv-formats stay installed: fastify depends on them itself.
    for (const dev of ['typescript', 'tsx', 'eslint', 'prettier', 'fast-check', 'yaml'])
      assert.ok(!installed.has(dev), `${dev} is installed with --omit=dev`);
  });

  test('every entry point starts with production dependencies only', () => {
    assert.ok(built);
    assert.ok(Object.keys(pkg.bin).length >= 2);
    for (const [name, path] of Object.entries(pkg.bin)) {
      const r = run(process.execPath, [path, '--help'], dir, 60_000);
      assert.equal(r.status, 0, `${name} --help:\n${r.output}`);
      assert.match(r.output, /usage/i, `${name} --help printed no usage`);
    }
  });

  test('every built module imports with production dependencies only', () => {
    assert.ok(built);
    // main.js files run their program when imported: the entry point test covers them.
    const modules = jsFiles(join(dir, 'dist')).filter((f) => !f.endsWith('/main.js'));
    assert.ok(modules.length > 40, `only ${modules.length} modules built`);
    const script = `
      const failed = [];
      for (const f of ${JSON.stringify(modules)}) {
        try { await import(f); } catch (e) { failed.push(f + ': ' + (e.code ?? '') + ' ' + e.message.split('\\n')[0]); }
      }
      console.log(JSON.stringify(failed));`;
    const r = run(process.execPath, ['--input-type=module', '-e', script], dir, 120_000);
    assert.equal(r.status, 0, r.output);
    assert.deepEqual(JSON.parse(r.output.trim().split('\n').at(-1)!), []);
  });

  test('every production dependency is imported by the built code, and nothing else is', () => {
    assert.ok(built);
    const imported = new Set<string>();
    const byModule: string[] = [];
    for (const f of jsFiles(join(dir, 'dist')))
      for (const p of importedPackages(readFileSync(f, 'utf8'))) {
        imported.add(p);
        if (!(p in pkg.dependencies)) byModule.push(`${relative(dir, f)} imports ${p}`);
      }
    assert.deepEqual(
      byModule,
      [],
      'built code imports a package that is not a production dependency',
    );
    assert.deepEqual(
      Object.keys(pkg.dependencies).filter((d) => !imported.has(d)),
      [],
      'production dependencies no built module imports (move them to devDependencies)',
    );
  });

  test('the import scanner sees static, re-export, side-effect and dynamic imports', () => {
    assert.deepEqual(
      importedPackages(
        [
          "import { a } from 'pino';",
          "import type { B } from '@kubernetes/client-node/dist/x.js';",
          "export { c } from 'fastify';",
          "import 'prom-client';",
          "const m = await import('yaml');",
          "import { d } from './local.js';",
          "import { e } from 'node:fs';",
        ].join('\n'),
      ),
      ['pino', '@kubernetes/client-node', 'fastify', 'prom-client', 'yaml'],
    );
  });
});
