/**
 * The Dockerfile cannot be built here (no Docker engine), so what it relies on is checked
 * piece by piece: what it copies exists and passes .dockerignore, the build covers every
 * source tree, the runtime imports only production dependencies, the entry points the
 * chart runs exist, and its shell steps work on this Debian.
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { builtinModules } from 'node:module';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { repoDir } from './helm.ts';

interface Instruction {
  keyword: string;
  args: string;
}

/** Dockerfile instructions: comment lines dropped, continuation lines joined. */
function instructions(): Instruction[] {
  const text = readFileSync(join(repoDir, 'Dockerfile'), 'utf8');
  const logical = text
    .split('\n')
    .filter((l) => !/^\s*#/.test(l))
    .join('\n')
    .replace(/\\\n/g, ' ');
  return logical
    .split('\n')
    .filter((l) => l.trim())
    .map((l) => {
      const [keyword = '', ...rest] = l.trim().split(/\s+/);
      return { keyword: keyword.toUpperCase(), args: rest.join(' ') };
    });
}

/** .dockerignore semantics (last matching pattern wins, `!` re-includes), enough for ours. */
function ignoredByDockerignore(path: string): boolean {
  const patterns = readFileSync(join(repoDir, '.dockerignore'), 'utf8')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'));
  let ignored = false;
  for (const raw of patterns) {
    const negate = raw.startsWith('!');
    const pattern = (negate ? raw.slice(1) : raw).replace(/\/$/, '');
    const re = new RegExp(
      '^' +
        pattern
          .replace(/[.+^${}()|[\]\\]/g, '\\$&')
          .replace(/\*\*\/?/g, '\uE000')
          .replace(/\*/g, '[^/]*')
          .replace(/\uE000/g, '.*') +
        '(/.*)?$',
    );
    if (re.test(path)) ignored = !negate;
  }
  return ignored;
}

function copySources(): string[] {
  return instructions()
    .filter((i) => i.keyword === 'COPY' && !i.args.includes('--from='))
    .flatMap((i) =>
      i.args
        .split(/\s+/)
        .filter((a) => !a.startsWith('--'))
        .slice(0, -1),
    );
}

const buildConfig = JSON.parse(readFileSync(join(repoDir, 'tsconfig.build.json'), 'utf8')) as {
  include: string[];
  exclude?: string[];
};

function sourceFiles(dir: string): string[] {
  return readdirSync(join(repoDir, dir), { recursive: true })
    .map(String)
    .filter((f) => f.endsWith('.ts') && !f.endsWith('.test.ts'))
    .map((f) => join(dir, f));
}

describe('Dockerfile', () => {
  test('every file it copies from the build context exists and is not excluded by .dockerignore', () => {
    const sources = copySources();
    assert.ok(sources.length >= 6, sources.join(' '));
    for (const src of sources) {
      assert.ok(existsSync(join(repoDir, src)), `${src} does not exist`);
      assert.equal(ignoredByDockerignore(src), false, `${src} is excluded by .dockerignore`);
      if (statSync(join(repoDir, src)).isDirectory()) {
        const inside = readdirSync(join(repoDir, src), { recursive: true }).map(String);
        const kept = inside.filter((f) => !ignoredByDockerignore(join(src, f)));
        assert.ok(kept.length > 0, `${src} is empty after .dockerignore`);
      }
    }
    assert.equal(
      ignoredByDockerignore('dataplane/src/tftp/codec.test.ts'),
      true,
      'tests stay out of the context',
    );
    assert.equal(ignoredByDockerignore('node_modules/yaml/package.json'), true);
  });

  test('the build stage copies every source tree tsconfig.build.json compiles', () => {
    const copied = copySources();
    for (const dir of buildConfig.include)
      assert.ok(copied.includes(dir), `${dir} is compiled but not copied`);
    assert.ok(copied.includes('tsconfig.json'), 'tsconfig.build.json extends tsconfig.json');
  });

  test('the launchers the chart runs load dist files that tsc emits from existing sources', () => {
    const tsconfig = JSON.parse(readFileSync(join(repoDir, 'tsconfig.json'), 'utf8')) as {
      compilerOptions: { outDir: string; rootDir: string };
    };
    assert.deepEqual(
      [tsconfig.compilerOptions.rootDir, tsconfig.compilerOptions.outDir],
      ['.', 'dist'],
    );
    const steps = instructions();
    assert.ok(steps.some((i) => i.keyword === 'WORKDIR' && i.args === '/app'));
    assert.ok(steps.some((i) => i.keyword === 'COPY' && i.args === 'bin ./bin'));
    for (const launcher of ['bin/rtftp.js', 'bin/rtftp-operator.js']) {
      const text = readFileSync(join(repoDir, launcher), 'utf8');
      // Each launcher hands its entry to bin/run-entry.js, which runs dist/<entry>.js in the image.
      const built = text.match(/runEntry\('([^']+)'\)/)?.[1];
      assert.ok(built, `${launcher} names no entry`);
      assert.ok(
        existsSync(join(repoDir, `${built}.ts`)),
        `${built}.ts (run by ${launcher}) does not exist`,
      );
      assert.ok(
        buildConfig.include.some((dir) => built.startsWith(dir + '/')),
        `${built}.ts is not compiled by npm run build`,
      );
    }
    const chart = readdirSync(join(repoDir, 'charts/rtftp/templates'))
      .map((f) => readFileSync(join(repoDir, 'charts/rtftp/templates', f), 'utf8'))
      .join('\n');
    for (const path of chart.match(/\/app\/bin\/[\w.-]+/g) ?? []) {
      assert.ok(
        existsSync(join(repoDir, path.replace('/app/', ''))),
        `the chart runs ${path}, which the image lacks`,
      );
    }
  });

  test('runtime code imports only production dependencies (the image prunes devDependencies)', () => {
    const pkg = JSON.parse(readFileSync(join(repoDir, 'package.json'), 'utf8')) as {
      dependencies: Record<string, string>;
    };
    const allowed = new Set([...Object.keys(pkg.dependencies), ...builtinModules]);
    const problems: string[] = [];
    for (const dir of buildConfig.include) {
      for (const file of sourceFiles(dir)) {
        const text = readFileSync(join(repoDir, file), 'utf8');
        for (const m of text.matchAll(
          /^\s*(?:import|export)\s(?!type\s)[^'"]*?from\s+'([^'.][^']*)'|import\('([^'.][^']*)'\)/gm,
        )) {
          const spec = (m[1] ?? m[2])!.replace(/^node:/, '');
          const name = spec.startsWith('@')
            ? spec.split('/').slice(0, 2).join('/')
            : spec.split('/')[0]!;
          if (!allowed.has(name))
            problems.push(`${relative(repoDir, join(repoDir, file))} imports ${spec}`);
        }
      }
    }
    assert.deepEqual(problems, []);
  });

  test("the runtime user and node-netbind match what the chart's security context expects", () => {
    const steps = instructions();
    assert.ok(steps.some((i) => i.keyword === 'USER' && i.args === '10001:10001'));
    const run = steps
      .filter((i) => i.keyword === 'RUN')
      .map((i) => i.args)
      .join('\n');
    assert.match(run, /cp \/usr\/local\/bin\/node \/usr\/local\/bin\/node-netbind/);
    assert.match(run, /setcap cap_net_bind_service=\+ep \/usr\/local\/bin\/node-netbind/);
    assert.match(run, /useradd --uid 10001 --gid 10001/);
    assert.match(
      run,
      /find \/ -xdev -type f -perm \/6000 -exec chmod a-s \{\} \+/,
      'setuid bits are stripped',
    );
    const env = steps
      .filter((i) => i.keyword === 'ENV')
      .map((i) => i.args)
      .join(' ');
    assert.match(env, /LIBGUESTFS_PATH=\/usr\/lib\/rtftp\/appliance/);
    assert.match(run, /libguestfs-make-fixed-appliance \/usr\/lib\/rtftp\/appliance/);
  });

  test(
    'its appliance-shrinking step shrinks a sparse ext2 image and keeps the files in it',
    {
      skip:
        spawnSync('sh', ['-c', 'command -v resize2fs']).status === 0
          ? undefined
          : 'e2fsprogs not installed',
    },
    () => {
      const run = instructions().find(
        (i) => i.keyword === 'RUN' && i.args.includes('resize2fs'),
      )!.args;
      const shrink = run.match(/cd \/usr\/lib\/rtftp\/appliance && (.*?) && cd \/ /)?.[1];
      assert.ok(
        shrink,
        'shrink commands not found between "cd /usr/lib/rtftp/appliance" and "cd /"',
      );
      const dir = mkdtempSync(join(tmpdir(), 'rtftp-shrink-'));
      try {
        mkdirSync(join(dir, 'content'));
        writeFileSync(join(dir, 'content/hello'), 'appliance file\n');
        writeFileSync(join(dir, 'content/blob'), Buffer.alloc(3 << 20, 7));
        const mkfs = spawnSync(
          'mkfs.ext2',
          ['-q', '-F', '-d', join(dir, 'content'), join(dir, 'root'), '256M'],
          { encoding: 'utf8' },
        );
        assert.equal(mkfs.status, 0, mkfs.stderr);
        const result = spawnSync('sh', ['-ec', shrink], { cwd: dir, encoding: 'utf8' });
        assert.equal(result.status, 0, result.stderr + result.stdout);
        const size = statSync(join(dir, 'root')).size;
        assert.ok(size < 32 << 20, `root is still ${size} bytes`);
        assert.equal(
          spawnSync('e2fsck', ['-fn', join(dir, 'root')]).status,
          0,
          'file system damaged',
        );
        const cat = spawnSync('debugfs', ['-R', 'cat /hello', join(dir, 'root')], {
          encoding: 'utf8',
        });
        assert.equal(cat.stdout, 'appliance file\n');
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
  );
});
