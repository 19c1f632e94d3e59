/**
 * The dataplane images, run with podman exactly as the chart's DaemonSet renders the `tftp`
 * container (e2e/containers/pod.ts), in a network namespace of the test's own with real
 * clients in namespaces of their own. Each image binds UDP 69 as uid 10001 holding only
 * NET_BIND_SERVICE (its node's file capability), serves from default/ and from a disk on a
 * real nbdkit through the native reader; the full image also through libguestfs under TCG.
 * tini is PID 1: after a SIGKILL of guestfish no zombie remains; SIGTERM drains a running
 * transfer and exits 0.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  chmodSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  realpathSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { BootDisk } from '../harness/boot-disk.ts';
import { parseLogLine, type LogEntry } from '../harness/dataplane-process.ts';
import { createStarTopology, type StarTopology } from '../../dataplane/test/helpers/netns.ts';
import { failed, runClient } from '../../dataplane/test/helpers/real-clients.ts';
import {
  CAP_NET_BIND_SERVICE,
  containerProcesses,
  podmanMissingReason,
  processCredentials,
  renderForBuiltImages,
  renderedContainer,
  runContainer,
  writeCompleteSnapshot,
  type RunningContainer,
} from './pod.ts';

const FLAVORS = [
  { flavor: 'native', image: 'localhost/rtftp-dataplane:dev-native', guestfs: false },
  { flavor: 'full', image: 'localhost/rtftp-dataplane:dev', guestfs: true },
] as const;

const METRICS_PORT = 9669;

for (const { flavor, image, guestfs } of FLAVORS) {
  const skip = podmanMissingReason([image]);
  if (skip) console.log(`# skipped the ${flavor} dataplane image tests: ${skip}`);
  describe(`the ${flavor} dataplane image (${image}) as the chart runs it`, { skip }, () => {
    let dir = '';
    let net: StarTopology | undefined;
    let disk: BootDisk | undefined;
    let dataplane: RunningContainer | undefined;
    const kernel = randomBytes(300_000);
    const defaultFile = randomBytes(70_000);
    // A file big enough that a lock-step transfer is still running when SIGTERM arrives.
    const bigFile = randomBytes(24 << 20);

    // The disk's socket is an NBD target the admin allows, as a user would (--nbd-allow).
    const rendered = () =>
      renderedContainer(
        renderForBuiltImages({
          dataplane: {
            image: { flavor },
            nbdAllow: ['0.0.0.0/0', '::/0', join(dir, 'disk', 'board.sock')],
          },
        }),
        'DaemonSet',
        'tftp',
      );

    const logs = (): LogEntry[] =>
      dataplane!.process.lines.map(parseLogLine).filter((e): e is LogEntry => e !== null);

    const waitForLog = async (match: (e: LogEntry) => boolean, timeoutMs: number) =>
      parseLogLine(
        await dataplane!.process.waitForLine((l) => {
          const e = parseLogLine(l);
          return e !== null && match(e);
        }, timeoutMs),
      )!;

    async function fetch(client: number, file: string, timeoutMs = 60_000): Promise<Buffer> {
      const seat = net!.clients[client]!;
      const out = join(dir, `got-${client}-${file}`);
      rmSync(out, { force: true });
      const run = await runClient('tftp-hpa', {
        host: seat.serverAddress,
        port: 69,
        file,
        out,
        netns: seat.netns,
        timeoutMs,
      });
      assert.ok(!failed(run), `${run.command}: ${run.output}`);
      return readFileSync(out);
    }

    function writeConfig(client: number, backend: 'native' | 'guestfs') {
      const configs = join(dir, 'configs');
      const ip = net!.clients[client]!.address;
      writeFileSync(join(configs, `.${ip}.tmp`), disk!.config(backend));
      spawnSync('mv', [join(configs, `.${ip}.tmp`), join(configs, `${ip}.nbd`)]);
    }

    const curl = (path: string) =>
      spawnSync(
        'ip',
        ['netns', 'exec', net!.server, 'curl', '-sf', `http://127.0.0.1:${METRICS_PORT}${path}`],
        { encoding: 'utf8', timeout: 20_000 },
      );

    before(async () => {
      dir = mkdtempSync(join(tmpdir(), `rtftp-img-${flavor}-`));
      chmodSync(dir, 0o755);
      for (const d of ['root/default', 'configs', 'tmp', 'disk'])
        mkdirSync(join(dir, d), { recursive: true });
      // emptyDirs are world-writable, as the kubelet makes them.
      chmodSync(join(dir, 'tmp'), 0o1777);
      chmodSync(join(dir, 'configs'), 0o755);
      writeFileSync(join(dir, 'root/default/pxelinux.0'), defaultFile, { mode: 0o644 });
      writeFileSync(join(dir, 'root/default/big.img'), bigFile, { mode: 0o644 });
      chmodSync(join(dir, 'disk'), 0o755);
      disk = await BootDisk.create({
        dir: join(dir, 'disk'),
        name: 'board',
        table: 'gpt',
        bootFiles: [{ path: 'vmlinuz', content: kernel }],
      });
      // The NBD socket reaches the container as an nbd+unix path would through the chart's
      // extra volumes; uid 10001 must be able to connect to it.
      const socket = realpathSync(join(dir, 'disk', 'board.sock'));
      chmodSync(dirname(socket), 0o755);
      chmodSync(socket, 0o666);
      net = createStarTopology('img', 3);
      dataplane = runContainer(rendered(), {
        name: `rtftp-dp-${flavor}-${process.pid}`,
        netns: net.server,
        volumes: { root: join(dir, 'root'), configs: join(dir, 'configs'), tmp: join(dir, 'tmp') },
        extraMounts: [
          `${join(dir, 'disk')}:${join(dir, 'disk')}:ro`,
          `${dirname(socket)}:${dirname(socket)}`,
        ],
      });
      await waitForLog((e) => e.msg === 'Server listening', 60_000);
      await waitForLog((e) => e.msg === 'HTTP server listening', 30_000);
      // No config yet: each test writes its client's, as the sidecar would on a change.
      writeCompleteSnapshot(join(dir, 'configs'));
      await waitForLog((e) => e.msg.startsWith('Config snapshot served'), 30_000);
    });

    after(async () => {
      dataplane?.remove();
      await dataplane?.process.stop(2_000);
      net?.destroy();
      await disk?.close();
      if (dir) rmSync(dir, { recursive: true, force: true });
    });

    test('binds UDP 69 as uid 10001 holding only NET_BIND_SERVICE, under tini as PID 1', () => {
      const hostPid1 = dataplane!.pid1();
      const procs = containerProcesses(hostPid1);
      const pid1 = procs.find((p) => p.pid === hostPid1);
      assert.equal(pid1?.comm, 'tini', JSON.stringify(procs));
      const node = procs.find((p) => p.comm === 'node' && p.ppid === pid1.pid);
      assert.ok(node, JSON.stringify(procs));
      assert.deepEqual(processCredentials(node.pid), {
        uid: 10001,
        capPrm: CAP_NET_BIND_SERVICE,
        capEff: CAP_NET_BIND_SERVICE,
      });
      assert.equal(logs().find((e) => e.msg === 'Server listening')?.port, 69);
    });

    test('an orphaned process in the container is reaped by PID 1 (tini), no zombie stays', async () => {
      const hostPid1 = dataplane!.pid1();
      // sh exits at once; its background sleep is re-parented to PID 1 and exits a second later.
      const exec = spawnSync('podman', ['exec', dataplane!.name, 'sh', '-c', 'sleep 1 & exit 0'], {
        encoding: 'utf8',
      });
      assert.equal(exec.status, 0, exec.stderr);
      let procs = containerProcesses(hostPid1);
      for (let waited = 0; waited < 10_000; waited += 250) {
        await new Promise((r) => setTimeout(r, 250));
        procs = containerProcesses(hostPid1);
        if (!procs.some((p) => p.comm === 'sleep')) break;
      }
      assert.deepEqual(
        procs.filter((p) => p.comm === 'sleep' || p.state === 'Z'),
        [],
        'the orphan exited and was reaped',
      );
    });

    test('serves a file from default/', async () => {
      assert.ok((await fetch(0, 'pxelinux.0')).equals(defaultFile));
    });

    test('serves a file from a disk through the native reader', async () => {
      writeConfig(1, 'native');
      await waitForLog((e) => e.msg === 'Disk connected' && e.backend === 'native', 30_000);
      assert.ok((await fetch(1, 'vmlinuz')).equals(kernel));
      const line = await waitForLog(
        (e) => e.msg.startsWith('Transfer') && e.file === 'vmlinuz',
        5_000,
      );
      assert.equal(line.source, 'nbd', JSON.stringify(line));
    });

    test(
      "its libguestfs appliance's root file system has free space for what the appliance writes",
      { skip: guestfs ? undefined : 'the native image has no libguestfs' },
      () => {
        // The appliance writes to its root as it boots and runs (machine-id, /tmp/lvm, the
        // daemon's command output files); on a full root list-filesystems fails
        // (docs/images.md, "The appliance's free space").
        const header = spawnSync(
          'podman',
          ['exec', dataplane!.name, 'dumpe2fs', '-h', '/usr/lib/rtftp/appliance/root'],
          { encoding: 'utf8' },
        );
        assert.equal(header.status, 0, header.stderr);
        const field = (name: string) =>
          Number(header.stdout.match(new RegExp(`^${name}:\\s*(\\d+)`, 'm'))?.[1]);
        const free = field('Free blocks') * field('Block size');
        assert.ok(free >= 16 << 20, `${free} bytes free in the appliance's root`);
      },
    );

    test(
      'serves a file from a disk through libguestfs under TCG',
      { skip: guestfs ? undefined : 'the native image has no libguestfs' },
      async () => {
        writeConfig(2, 'guestfs');
        // An appliance launch under TCG on a loaded 2-core machine: generous on purpose.
        await waitForLog((e) => e.msg === 'Disk connected' && e.backend === 'guestfs', 240_000);
        assert.ok((await fetch(2, 'vmlinuz', 120_000)).equals(kernel));
      },
    );

    test('/metrics and /readyz answer on the node network', () => {
      const ready = curl('/readyz');
      assert.equal(ready.status, 0, ready.stderr);
      const metrics = curl('/metrics');
      assert.equal(metrics.status, 0, metrics.stderr);
      assert.match(metrics.stdout, /^rtftp_transfers_total\{/m);
    });

    test(
      'after a SIGKILL of guestfish no zombie remains: tini reaps the orphaned processes',
      { skip: guestfs ? undefined : 'the native image runs no guestfish' },
      async () => {
        const pid1 = dataplane!.pid1();
        const guestfish = containerProcesses(pid1).find((p) => p.comm === 'guestfish');
        assert.ok(guestfish, 'no guestfish running (the guestfs disk is connected)');
        const before = new Set(containerProcesses(pid1).map((p) => p.pid));
        process.kill(guestfish.pid, 'SIGKILL');
        // guestfish's own helpers (its qemu, the recovery process) die with it and are
        // re-parented to PID 1; node reaps guestfish itself.
        let zombies = containerProcesses(pid1).filter((p) => p.state === 'Z');
        for (let waited = 0; waited < 30_000; waited += 250) {
          await new Promise((r) => setTimeout(r, 250));
          const procs = containerProcesses(pid1);
          zombies = procs.filter((p) => p.state === 'Z');
          const leftovers = procs.filter((p) => before.has(p.pid) && /qemu|guestfish/.test(p.comm));
          if (zombies.length === 0 && leftovers.length === 0) break;
        }
        assert.deepEqual(zombies, []);
        assert.deepEqual(
          containerProcesses(pid1).filter(
            (p) => before.has(p.pid) && /qemu|guestfish/.test(p.comm),
          ),
          [],
        );
      },
    );

    test('SIGTERM drains a running transfer and exits 0', async () => {
      const seat = net!.clients[0]!;
      const out = join(dir, 'big.img');
      const transfer = runClient('tftp-hpa', {
        host: seat.serverAddress,
        port: 69,
        file: 'big.img',
        out,
        netns: seat.netns,
        timeoutMs: 180_000,
      });
      // SIGTERM once the transfer runs (the gauge of running transfers says so).
      for (
        let i = 0;
        i < 100 && !/^rtftp_transfers_active\S* [1-9]/m.test(curl('/metrics').stdout);
        i++
      )
        await new Promise((r) => setTimeout(r, 100));
      dataplane!.kill('SIGTERM');
      const started = await waitForLog((e) => e.msg === 'Shutdown started', 10_000);
      assert.ok(Number(started.transfersActive) >= 1, 'the transfer was running at SIGTERM');
      const run = await transfer;
      assert.ok(!failed(run), run.output);
      assert.ok(readFileSync(out).equals(bigFile), 'the client got the whole file');
      assert.equal(await dataplane!.process.exited, 0);
      assert.ok(logs().some((e) => e.msg === 'Shutdown completed'));
    });
  });
}
