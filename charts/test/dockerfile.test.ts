/**
 * What the Dockerfile relies on, checked piece by piece without building it: what it copies
 * exists and passes .dockerignore, the build covers every source tree, each target runs what
 * the chart runs under the name the chart and scripts/build-image.sh give it, the runtime
 * imports only the dependencies each image keeps, and its shell steps work on this Debian.
 * e2e/containers builds and runs the images themselves.
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
import { dirname, join, relative } from 'node:path';
import {
  containerOf,
  findObject,
  helmMissingReason,
  renderChart,
  repoDir,
  type Container,
} from './helm.ts';

interface Instruction {
  keyword: string;
  args: string;
}

/** Dockerfile instructions: comment lines dropped, continuation lines joined. */
export function instructions(): Instruction[] {
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

/** Each stage's instructions after its FROM, by stage name (`FROM image AS name`). */
export function stages(): Map<string, { from: string; steps: Instruction[] }> {
  const out = new Map<string, { from: string; steps: Instruction[] }>();
  let current: Instruction[] | undefined;
  for (const step of instructions()) {
    if (step.keyword === 'FROM') {
      const m = /^(\S+)\s+AS\s+(\S+)$/i.exec(step.args);
      assert.ok(m, `FROM ${step.args} names no stage`);
      current = [];
      out.set(m[2]!, { from: m[1]!, steps: current });
    } else current?.push(step);
  }
  return out;
}

/** The instructions of a target and of every stage it is built FROM, base first. */
function targetSteps(target: string): Instruction[] {
  const all = stages();
  const stage = all.get(target);
  assert.ok(stage, `no stage ${target}`);
  return [...(all.has(stage.from) ? targetSteps(stage.from) : []), ...stage.steps];
}

/** A JSON-form instruction's list (CMD ["a", "b"]), or [] when there is none. */
function execForm(steps: Instruction[], keyword: string): string[] {
  const last = steps.filter((i) => i.keyword === keyword).at(-1);
  return last ? (JSON.parse(last.args) as string[]) : [];
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

const TARGETS = ['operator', 'dataplane-native', 'dataplane'] as const;

/** Target -> image name, as scripts/build-image.sh's image_name() maps them with TAG=dev. */
function buildScriptImages(): Map<string, string> {
  const script = readFileSync(join(repoDir, 'scripts/build-image.sh'), 'utf8');
  const body = /^image_name\(\) \{([\s\S]*?)^\}/m.exec(script)?.[1] ?? '';
  const out = new Map<string, string>();
  for (const m of body.matchAll(/^\s*([\w-]+)\) echo "([^"]+)" ;;/gm))
    out.set(m[1]!, m[2]!.replace(/\$TAG/g, 'dev'));
  return out;
}

/** Every .ts file and package a source file reaches through static and dynamic imports. */
function importClosure(entry: string): { files: Set<string>; packages: Set<string> } {
  const files = new Set<string>();
  const packages = new Set<string>();
  const visit = (file: string) => {
    if (files.has(file)) return;
    files.add(file);
    const text = readFileSync(file, 'utf8');
    for (const m of text.matchAll(
      /^\s*(?:import|export)\s(?!type\s)[^'"]*?from\s+'([^']+)'|import\('([^']+)'\)/gm,
    )) {
      const spec = (m[1] ?? m[2])!;
      if (spec.startsWith('.')) {
        visit(join(dirname(file), spec.replace(/\.js$/, '.ts')));
      } else if (!spec.startsWith('node:') && !builtinModules.includes(spec)) {
        packages.add(
          spec.startsWith('@') ? spec.split('/').slice(0, 2).join('/') : spec.split('/')[0]!,
        );
      }
    }
  };
  visit(entry);
  return { files, packages };
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
    assert.ok(steps.some((i) => i.keyword === 'COPY' && i.args === 'bin bin'));
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

  test("each target's user, init, node and file capability are what the chart's pods expect", () => {
    const run = (target: string) =>
      targetSteps(target)
        .filter((i) => i.keyword === 'RUN')
        .map((i) => i.args)
        .join('\n');
    const env = (target: string) =>
      targetSteps(target)
        .filter((i) => i.keyword === 'ENV')
        .map((i) => i.args)
        .join(' ');
    assert.match(run('runtime'), /useradd --uid 10001 --gid 10001/);
    for (const target of TARGETS) {
      const steps = targetSteps(target);
      assert.equal(steps.filter((i) => i.keyword === 'USER').at(-1)?.args, '10001:10001', target);
      assert.match(
        run(target),
        /find \/ -xdev -type f -perm \/6000 -exec chmod a-s \{\} \+/,
        `${target}: setuid bits are stripped`,
      );
    }
    for (const target of ['dataplane', 'dataplane-native']) {
      // node carries the capability, set in the step that writes it (one copy in the image).
      assert.match(
        run(target),
        /cp \/mnt\/node\/node \/usr\/local\/bin\/node && setcap cap_net_bind_service=\+ep \/usr\/local\/bin\/node/,
        target,
      );
      assert.deepEqual(execForm(targetSteps(target), 'ENTRYPOINT'), ['/usr/bin/tini', '--']);
    }
    assert.doesNotMatch(run('operator'), /setcap|tini/);
    assert.match(env('dataplane'), /LIBGUESTFS_PATH=\/usr\/lib\/rtftp\/appliance/);
    assert.match(run('dataplane'), /libguestfs-make-fixed-appliance \/usr\/lib\/rtftp\/appliance/);
    for (const target of ['operator', 'dataplane-native'])
      assert.doesNotMatch(run(target) + env(target), /guestfs|linux-image|qemu/, target);
  });

  test(
    'the three targets are the images the chart names and scripts/build-image.sh builds, and run what the chart runs',
    { skip: helmMissingReason() },
    () => {
      const built = buildScriptImages();
      assert.deepEqual([...built.keys()].sort(), [...TARGETS].sort());
      for (const target of TARGETS) assert.ok(stages().has(target), `no target ${target}`);
      // The chart's images with the build script's registry and tag: exactly the names it builds.
      const images = (values: object) => {
        const objects = renderChart({ image: { registry: 'localhost', tag: 'dev' }, ...values });
        const ds = findObject(objects, 'DaemonSet');
        const deploy = findObject(objects, 'Deployment');
        return {
          operator: containerOf(deploy, 'operator'),
          sync: containerOf(ds, 'config-sync'),
          tftp: containerOf(ds, 'tftp'),
        };
      };
      const full = images({});
      const native = images({ dataplane: { image: { flavor: 'native' } } });
      const runs: [Container, string][] = [
        [full.operator, 'operator'],
        [full.sync, 'operator'],
        [full.tftp, 'dataplane'],
        [native.tftp, 'dataplane-native'],
      ];
      for (const [container, target] of runs) {
        assert.equal(container.image, built.get(target), `${container.name} -> ${target}`);
        const steps = targetSteps(target);
        const entry = [...execForm(steps, 'ENTRYPOINT'), ...execForm(steps, 'CMD')];
        // The chart's command is the target's own entry point, or (sync) its launcher's mode.
        const command = container.command ?? [];
        assert.deepEqual(command.slice(0, entry.length), entry, `${container.name} -> ${target}`);
      }
      // The defaults name the same repositories, under the chart's registry and appVersion.
      const repositoryOf = (image = '') => image.replace(/^.*\//, '').replace(/[:@].*$/, '');
      const defaults = renderChart({});
      for (const [owner, name, target] of [
        ['Deployment', 'operator', 'operator'],
        ['DaemonSet', 'tftp', 'dataplane'],
      ] as const) {
        assert.equal(
          repositoryOf(containerOf(findObject(defaults, owner), name).image),
          repositoryOf(built.get(target)),
        );
      }
    },
  );

  test('the revision and version reach the image as RTFTP_REVISION and RTFTP_VERSION (rtftp_build_info)', () => {
    const pkg = JSON.parse(readFileSync(join(repoDir, 'package.json'), 'utf8')) as {
      version: string;
    };
    for (const target of TARGETS) {
      const steps = stages().get(target)!.steps;
      const args = steps.filter((i) => i.keyword === 'ARG').map((i) => i.args);
      assert.ok(args.includes('REVISION=unknown'), target);
      assert.ok(args.includes(`VERSION=${pkg.version}`), `${target}: VERSION is package.json's`);
      const env = steps.filter((i) => i.keyword === 'ENV').map((i) => i.args);
      assert.ok(
        env.includes('RTFTP_REVISION=${REVISION} RTFTP_VERSION=${VERSION}'),
        `${target}: ${env.join(' | ')}`,
      );
      // Last, so a new revision rebuilds nothing below it.
      assert.ok(
        steps
          .slice(steps.findIndex((i) => i.args === 'REVISION=unknown'))
          .every((i) => ['ARG', 'ENV', 'LABEL'].includes(i.keyword)),
        `${target}: only ARG/ENV/LABEL after ARG REVISION`,
      );
    }
    const script = readFileSync(join(repoDir, 'scripts/build-image.sh'), 'utf8');
    assert.match(script, /--build-arg "REVISION=\$REVISION"/);
    assert.match(script, /git rev-parse HEAD/);
  });

  test('the dataplane imports no Kubernetes client, so its image drops @kubernetes/client-node', () => {
    const run = stages()
      .get('build')!
      .steps.map((i) => i.args)
      .join('\n');
    assert.match(run, /npm pkg delete 'dependencies\.@kubernetes\/client-node'/);
    const reached = importClosure(join(repoDir, 'dataplane/src/main.ts'));
    const kube = [...reached.packages].filter((p) => p.startsWith('@kubernetes/'));
    assert.deepEqual(kube, [], 'packages the dataplane imports');
    assert.ok(reached.files.size > 20, `only ${reached.files.size} files reached`);
    assert.ok(
      [...reached.files].every((f) => /^(dataplane|common)\/src\//.test(relative(repoDir, f))),
      'the dataplane image carries dist/dataplane and dist/common only',
    );
  });

  test(
    'its appliance-shrinking step shrinks a sparse ext2 image, keeps the files in it and leaves it free space',
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
        assert.ok(size < 48 << 20, `root is still ${size} bytes`);
        // The appliance writes to its root as it runs; a full one fails list-filesystems
        // ("ls exited with status 2", docs/images.md "The appliance's free space"); it
        // writes well under 1 MiB, the Dockerfile gives it 32 MiB.
        const header = spawnSync('dumpe2fs', ['-h', join(dir, 'root')], { encoding: 'utf8' });
        const field = (name: string) =>
          Number(header.stdout.match(new RegExp(`^${name}:\\s*(\\d+)`, 'm'))?.[1]);
        const free = field('Free blocks') * field('Block size');
        assert.ok(free >= 16 << 20, `only ${free} bytes free in the shrunk root`);
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
