/**
 * The dataplane's security context, tried on the real kernel: the real rtftp is started
 * the way a container runtime would start the rendered container (its uid and gid, a
 * bounding set of exactly the rendered capabilities, no_new_privs unless
 * allowPrivilegeEscalation, nothing in the permitted set for a non-root user) under a node
 * that carries the file capability as the dataplane images' node does, inside a network
 * namespace of its own, and a real TFTP client fetches a file from it. e2e/containers runs
 * the built images themselves the same way.
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  chmodSync,
  copyFileSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import {
  VALUE_SETS,
  containerOf,
  findObject,
  helmMissingReason,
  renderChart,
  repoDir,
  type Container,
} from './helm.ts';

function missingReason(): string | undefined {
  if (process.getuid?.() !== 0) return 'needs root (setcap, ip netns, setpriv)';
  for (const tool of ['setcap', 'setpriv', 'ip', 'tftp']) {
    if (spawnSync('sh', ['-c', `command -v ${tool}`]).status !== 0)
      return `${tool} is not installed`;
  }
  return helmMissingReason();
}
const skip = missingReason();
if (skip) console.log(`# skipped bind privilege tests: ${skip}`);

/** The non-root runs need to read the checkout as uid 10001 (a CI clone may sit under a private dir). */
function unreadableReason(): string | undefined {
  if (skip) return skip;
  const probe = spawnSync('setpriv', [
    '--reuid',
    '10001',
    '--regid',
    '10001',
    '--clear-groups',
    'test',
    '-r',
    join(repoDir, 'node_modules/tsx/package.json'),
  ]);
  return probe.status === 0
    ? undefined
    : `uid 10001 cannot read ${repoDir} (a parent directory is private)`;
}
const nonRootSkip = unreadableReason();
if (nonRootSkip && !skip) console.log(`# skipped the non-root bind tests: ${nonRootSkip}`);

const NETNS = `rtftp-bind-${process.pid}`;
let dir = '';
let imageNode = '';
const children = new Set<ChildProcess>();

/** setpriv arguments that give a process what the runtime gives the rendered container. */
function runtimeIdentity(container: Container): string[] {
  const sc = container.securityContext ?? {};
  assert.deepEqual(
    sc.capabilities?.drop,
    ['ALL'],
    'the model below assumes every default capability is dropped',
  );
  const bounding = ['-all', ...(sc.capabilities?.add ?? []).map((c) => `+${c.toLowerCase()}`)].join(
    ',',
  );
  const nnp = sc.allowPrivilegeEscalation === false ? ['--no-new-privs'] : [];
  const base = [
    '--regid',
    String(sc.runAsGroup ?? 0),
    '--clear-groups',
    '--inh-caps=-all',
    `--bounding-set=${bounding}`,
  ];
  if ((sc.runAsUser ?? 0) === 0) return [...base, ...nnp];
  // A second setpriv, started as the user, has an empty permitted set, as runc's process
  // does after it switches to a non-root uid: only a file capability can grant one.
  return ['--reuid', String(sc.runAsUser), ...base, '/usr/bin/setpriv', ...nnp];
}

interface Started {
  listening: boolean;
  log: string;
  child: ChildProcess;
}

/** The rendered command after tini (PID 1 in the image, irrelevant to privileges here). */
function commandAfterInit(container: Container): string[] {
  const command = container.command ?? [];
  return command[0] === '/usr/bin/tini' && command[1] === '--' ? command.slice(2) : command;
}

/** Starts bin/rtftp.js as the container would run it; resolves once it listens or gives up. */
function startAsRendered(container: Container, port: number): Promise<Started> {
  assert.deepEqual(commandAfterInit(container), ['node', '/app/bin/rtftp.js']);
  const args = [
    'netns',
    'exec',
    NETNS,
    'setpriv',
    ...runtimeIdentity(container),
    imageNode,
    join(repoDir, 'bin/rtftp.js'),
  ];
  args.push(
    `--root=${dir}/root`,
    `--config-dir=${dir}/configs`,
    `--port=${port}`,
    '--listen=127.0.0.1',
    '--metrics-port=0',
  );
  const child = spawn('ip', args, { stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(child);
  let log = '';
  child.stderr.on('data', (d: Buffer) => (log += d.toString()));
  return new Promise((resolve) => {
    const timer = setTimeout(
      () => resolve({ listening: false, log: log + '\n(timed out)', child }),
      30_000,
    );
    const done = (listening: boolean) => {
      clearTimeout(timer);
      resolve({ listening, log, child });
    };
    createInterface({ input: child.stdout }).on('line', (line) => {
      log += line + '\n';
      if (line.includes('"Server listening"')) done(true);
      if (line.includes('"Server could not start"')) done(false);
    });
    child.on('exit', () => done(false));
  });
}

const NET_BIND_SERVICE = 1n << 10n;

/** The permitted and effective capability sets of a running process (/proc/PID/status). */
function capabilitySets(pid: number): { CapPrm: bigint; CapEff: bigint } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const set = (name: string) =>
    BigInt('0x' + (status.match(new RegExp(`^${name}:\\s*(\\w+)`, 'm'))?.[1] ?? 'x'));
  return { CapPrm: set('CapPrm'), CapEff: set('CapEff') };
}

function stop(child: ChildProcess) {
  if (child.exitCode === null && child.pid) process.kill(child.pid, 'SIGKILL');
  children.delete(child);
}

function fetch(port: number): Buffer {
  const out = join(dir, `fetched-${port}`);
  rmSync(out, { force: true });
  const run = spawnSync(
    'ip',
    [
      'netns',
      'exec',
      NETNS,
      'tftp',
      '127.0.0.1',
      String(port),
      '-m',
      'binary',
      '-c',
      'get',
      'pxelinux.0',
      out,
    ],
    {
      encoding: 'utf8',
      timeout: 20_000,
    },
  );
  assert.equal(run.status, 0, run.stderr + run.stdout);
  return readFileSync(out);
}

const tftpContainer = (values: object) =>
  containerOf(findObject(renderChart(values), 'DaemonSet'), 'tftp');

describe(
  'the dataplane binds its port with the rendered privileges, on a real kernel',
  { skip },
  () => {
    let file: Buffer;
    before(() => {
      dir = mkdtempSync(join(tmpdir(), 'rtftp-bind-'));
      chmodSync(dir, 0o755);
      mkdirSync(join(dir, 'root/default'), { recursive: true });
      mkdirSync(join(dir, 'configs'));
      file = randomBytes(150_000);
      writeFileSync(join(dir, 'root/default/pxelinux.0'), file, { mode: 0o644 });
      // The dataplane images' node: it carries the file capability (Dockerfile).
      imageNode = join(dir, 'node');
      copyFileSync(process.execPath, imageNode);
      chmodSync(imageNode, 0o755);
      const setcap = spawnSync('setcap', ['cap_net_bind_service=+ep', imageNode], {
        encoding: 'utf8',
      });
      assert.equal(setcap.status, 0, setcap.stderr);
      for (const cmd of [
        ['netns', 'add', NETNS],
        ['-n', NETNS, 'link', 'set', 'lo', 'up'],
      ]) {
        const run = spawnSync('ip', cmd, { encoding: 'utf8' });
        assert.equal(run.status, 0, run.stderr);
      }
    });
    after(() => {
      for (const child of children) stop(child);
      spawnSync('ip', ['netns', 'del', NETNS]);
      if (dir) rmSync(dir, { recursive: true, force: true });
    });

    const serving: [string, object, number][] = [
      [
        'default values (uid 10001, the file capability, only NET_BIND_SERVICE) serve a file on UDP 69',
        {},
        69,
      ],
      [
        'the root strategy (uid 0, only NET_BIND_SERVICE, no_new_privs) serves a file on UDP 69',
        VALUE_SETS.rootBind!,
        69,
      ],
      [
        'port 6969 serves with no_new_privs, holding no capability at all',
        VALUE_SETS.highPort!,
        6969,
      ],
    ];
    for (const [name, values, port] of serving) {
      const runsAsRoot = values === VALUE_SETS.rootBind;
      test(name, { skip: runsAsRoot ? undefined : nonRootSkip }, async () => {
        const started = await startAsRendered(tftpContainer(values), port);
        try {
          assert.ok(started.listening, started.log);
          assert.ok(fetch(port).equals(file));
          const caps = capabilitySets(started.child.pid!);
          if (port >= 1024) assert.deepEqual(caps, { CapPrm: 0n, CapEff: 0n }, 'no capability');
          else assert.deepEqual(caps, { CapPrm: NET_BIND_SERVICE, CapEff: NET_BIND_SERVICE });
        } finally {
          stop(started.child);
        }
      });
    }

    test(
      'with allowPrivilegeEscalation false the file capability is void and port 69 is refused',
      { skip: nonRootSkip },
      async () => {
        const container = tftpContainer({});
        container.securityContext = {
          ...container.securityContext,
          allowPrivilegeEscalation: false,
        };
        const started = await startAsRendered(container, 69);
        stop(started.child);
        assert.equal(started.listening, false);
        assert.match(started.log, /cannot bind 127\.0\.0\.1 port 69: EACCES/);
      },
    );

    test("the image's node cannot even start without NET_BIND_SERVICE in the bounding set, so every rendered dataplane keeps it there", () => {
      const container = tftpContainer(VALUE_SETS.highPort!);
      container.securityContext = {
        ...container.securityContext,
        capabilities: { drop: ['ALL'] },
      };
      const run = spawnSync(
        'setpriv',
        [...runtimeIdentity(container), imageNode, '-e', 'console.log("started")'],
        { encoding: 'utf8' },
      );
      assert.notEqual(run.status, 0);
      assert.equal(run.stdout, '');
      assert.match(run.stderr, /Operation not permitted/);
      for (const [name, values] of Object.entries(VALUE_SETS)) {
        const rendered = tftpContainer(values).securityContext?.capabilities?.add ?? [];
        assert.ok(rendered.includes('NET_BIND_SERVICE'), name);
      }
    });
  },
);
