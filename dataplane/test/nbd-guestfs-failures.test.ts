/**
 * Each way a disk can fail to connect, with real nbdkit and real guestfish: a clear
 * reason in log, metric and status, requests falling through to default/, retries with
 * backoff, and the disk used again once its server is back. Connection refused and a
 * missing export fail before the appliance boots (seconds); the mount failures and the
 * comeback need three appliances, launched in parallel.
 */
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { renderNbdConfig } from '../../common/src/nbd-config.ts';
import type { NbdMount } from '../../common/src/nbd-config.ts';
import { createDataplaneMetrics } from '../src/metrics.ts';
import { createNbdSource } from '../src/sources/nbd/index.ts';
import type { NbdSourceHandle } from '../src/sources/nbd/index.ts';
import { probeKvm } from '../src/sources/nbd/kvm-probe.ts';
import {
  BOOT_DISK_MOUNTS,
  buildBootDisk,
  captureLogger,
  pidsMentioning,
  waitFor,
} from './fixtures/nbd-harness.ts';
import type { BootDisk } from './fixtures/nbd-harness.ts';
import { freePort, startNbdkit } from './fixtures/nbdkit.ts';
import type { RunningNbdkit } from './fixtures/nbdkit.ts';

const never = new AbortController().signal;
const LAUNCH_MS = 300_000;

interface DiskStatus {
  client: string;
  state: string;
  failures: number;
  lastError: { reason: string; message: string } | null;
}

describe('NBD disk failures through guestfish', { timeout: 15 * 60_000 }, () => {
  let work: string;
  let root: string;
  let disk: BootDisk;
  let nbd: NbdSourceHandle;
  const servers: RunningNbdkit[] = [];
  const { logger, lines } = captureLogger();
  const metrics = createDataplaneMetrics(undefined, false);
  const disk_ = (ip: string) => (nbd.status().disks as DiskStatus[]).find((d) => d.client === ip);
  const writeConfig = (ip: string, url: string, mounts: NbdMount[] = BOOT_DISK_MOUNTS) =>
    writeFile(join(root, `${ip}.nbd`), renderNbdConfig({ url, mounts, tftpRoot: '/boot' }));
  const open = (ip: string, name: string) =>
    nbd.source.open({ clientIp: ip, components: [name], raw: name }, never);

  before(async () => {
    work = await mkdtemp(join(tmpdir(), 'rtftp-nbdf-'));
    root = join(work, 'root');
    await mkdir(root);
    disk = await buildBootDisk(work, 1);
    nbd = createNbdSource({
      root,
      logger,
      metrics,
      idleTimeoutS: 600,
      diskWaitS: 300,
      maxSessions: 8,
      applianceMemoryMiB: 256,
      tcgCacheMiB: 64,
      workDir: join(work, 'w'),
      applianceCacheDir: join(tmpdir(), 'rtftp-test-appliance-cache'),
      kvm: 'off',
      retryBaseMs: 1000,
      retryMaxMs: 4000,
      rescanIntervalS: 1,
    });
    await nbd.start();
  });

  after(async () => {
    await nbd?.stop();
    for (const s of servers) await s.stop();
    const left = await pidsMentioning(join(work, 'w'));
    await rm(work, { recursive: true, force: true });
    assert.deepEqual(left, [], 'no guestfish or qemu left after stop()');
  });

  it('reports connection refused, falls through, backs off, and uses the disk once the server is up', async () => {
    const port = await freePort();
    await writeConfig('127.0.0.11', `nbd://127.0.0.1:${port}/client`);
    await waitFor('first failure', () => disk_('127.0.0.11')?.lastError, 60_000);
    assert.equal(disk_('127.0.0.11')?.lastError?.reason, 'connection-refused');
    const r = await open('127.0.0.11', 'vmlinuz-6.1');
    assert.equal(r.status, 'unavailable', 'falls through to default/');
    const failure = lines.find((l) => l.msg === 'Disk connect failed');
    assert.equal(failure?.reason, 'connection-refused');
    assert.match(String(failure?.err), /unreachable \(connection refused\)/);
    const attemptsBefore = lines.filter((l) => l.msg === 'Disk connect failed').length;
    assert.ok(attemptsBefore <= 3, `backoff, not a hot loop: ${attemptsBefore} attempts`);
    servers.push(
      await startNbdkit({
        partitions: [disk.efiImage, disk.rootImage],
        exportName: 'client',
        port,
      }),
    );
    await waitFor('reconnected', () => disk_('127.0.0.11')?.state === 'connected', LAUNCH_MS, 500);
    const back = await open('127.0.0.11', 'vmlinuz-6.1');
    assert.equal(back.status, 'found');
    if (back.status === 'found') await back.file.close();
  });

  it('reports an export that does not exist', async () => {
    const server = await startNbdkit({
      partitions: [disk.efiImage, disk.rootImage],
      exportName: 'real',
    });
    servers.push(server);
    await writeConfig('127.0.0.12', server.url.replace(/\/real$/, '/missing'));
    await waitFor('failure', () => disk_('127.0.0.12')?.lastError, 60_000);
    assert.equal(disk_('127.0.0.12')?.lastError?.reason, 'export-not-found');
    assert.equal((await open('127.0.0.12', 'vmlinuz-6.1')).status, 'unavailable');
  });

  it('names the config field of a missing partition and of a missing mount point', async () => {
    const server = await startNbdkit({
      partitions: [disk.efiImage, disk.rootImage],
      exportName: 'x',
    });
    servers.push(server);
    await writeConfig('127.0.0.13', server.url, [
      { partition: 2, mountpoint: '/' },
      { partition: 7, mountpoint: '/boot/efi' },
    ]);
    await writeConfig('127.0.0.14', server.url, [
      { partition: 2, mountpoint: '/' },
      { partition: 1, mountpoint: '/boot/nowhere' },
    ]);
    await waitFor(
      'both failed',
      () => disk_('127.0.0.13')?.lastError && disk_('127.0.0.14')?.lastError,
      LAUNCH_MS,
      500,
    );
    const partition = disk_('127.0.0.13')!.lastError!;
    assert.equal(partition.reason, 'partition-missing');
    assert.match(partition.message, /^mounts\[1\]\.partition: the disk has no partition 7/);
    const mountpoint = disk_('127.0.0.14')!.lastError!;
    assert.equal(mountpoint.reason, 'mount-failed');
    assert.match(
      mountpoint.message,
      /^mounts\[1\]\.mountpoint: \/boot\/nowhere is not a directory/,
    );
    const byReason = new Map(
      (await metrics.nbdLaunchFailures.get()).values.map((v) => [v.labels.reason, v.value]),
    );
    for (const reason of [
      'connection-refused',
      'export-not-found',
      'partition-missing',
      'mount-failed',
    ]) {
      assert.ok(byReason.get(reason), `rtftp_nbd_launch_failures_total{reason="${reason}"}`);
    }
    // A failed launch leaves no appliance behind (the comeback session is the only one).
    await waitFor(
      'failed appliances gone',
      async () => (await pidsMentioning(join(work, 'w'), 'qemu-system')).length <= 1,
      10_000,
    );
  });

  it('probes KVM within its bound and says why', async () => {
    const r = await probeKvm({ timeoutMs: 3000 });
    assert.ok(r.durationMs < 5000);
    assert.ok(r.reason.length > 0);
    if (r.available) assert.equal(r.reason, 'a KVM guest booted');
    console.log(`# KVM probe: available=${r.available} (${r.reason}) in ${r.durationMs} ms`);
  });
});
