/**
 * The NBD source end to end with real parts: nbdkit serving an ext4 root + FAT32 EFI
 * partition (MBR, then GPT), real guestfish appliances (TCG here, ~15-40 s per launch),
 * configs written into a real root dir. Three launches in all, shared by the steps,
 * which therefore run in order.
 */
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, rm, stat, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { renderNbdConfig } from '../../common/src/nbd-config.ts';
import { createDataplaneMetrics } from '../src/metrics.ts';
import { createNbdSource } from '../src/sources/nbd/index.ts';
import type { NbdSourceHandle } from '../src/sources/nbd/index.ts';
import type { FileSource, OpenResult, ViewRequest } from '../src/sources/source.ts';
import { replaceFileInImage } from './fixtures/disk-image.ts';
import {
  BOOT_DISK_MOUNTS,
  buildBootDisk,
  captureLogger,
  hashOpenedFile,
  pidsMentioning,
  waitFor,
} from './fixtures/nbd-harness.ts';
import type { BootDisk } from './fixtures/nbd-harness.ts';
import { startNbdkit } from './fixtures/nbdkit.ts';
import type { RunningNbdkit } from './fixtures/nbdkit.ts';

const CLIENT = '127.0.0.5';
const SPECIALS = (
  [
    { name: 'fifo', kind: 'fifo', reason: 'not a regular file (fifo)' },
    { name: 'null', kind: 'char-device', reason: 'not a regular file (device)' },
    { name: 'sock', kind: 'socket', reason: 'not a regular file (socket)' },
  ] as const
).filter((s) => s.kind !== 'char-device' || process.getuid?.() === 0);
const LAUNCH_MS = 240_000;
const never = new AbortController().signal;

/** A plain directory source, so precedence is checked through a real chain. */
function dirSource(name: string, dirOf: (ip: string) => string): FileSource {
  return {
    name,
    open: async (req: ViewRequest): Promise<OpenResult> => {
      const path = join(dirOf(req.clientIp), ...req.components);
      try {
        const data = await readFile(path);
        return {
          status: 'found',
          source: name,
          location: path,
          file: {
            size: data.length,
            read: async (b, o, l, p) => data.copy(b, o, p, Math.min(data.length, p + l)),
            close: async () => undefined,
          },
        };
      } catch {
        return { status: 'not-found' };
      }
    },
  };
}

async function fetchInView(chain: FileSource[], clientIp: string, name: string) {
  const req = { clientIp, components: name.split('/'), raw: name };
  for (const source of chain) {
    const r = await source.open(req, never);
    if (r.status === 'not-found' || r.status === 'unavailable') continue;
    if (r.status === 'refused') return { source: 'refused', text: r.reason };
    if (r.status === 'not-ready') return { source: 'not-ready', text: '' };
    const buf = Buffer.alloc(Math.min(r.file.size, 4096));
    const n = await r.file.read(buf, 0, buf.length, 0);
    await r.file.close();
    return { source: r.source, text: buf.subarray(0, n).toString() };
  }
  return { source: 'none', text: '' };
}

describe('NBD source through guestfish', { timeout: 15 * 60_000 }, () => {
  let work: string;
  let root: string;
  let disk: BootDisk;
  let mbr: RunningNbdkit;
  let gpt: RunningNbdkit | undefined;
  let nbd: NbdSourceHandle;
  let chain: FileSource[];
  const { logger, lines } = captureLogger();
  const metrics = createDataplaneMetrics(undefined, false);
  const configPath = () => join(root, `${CLIENT}.nbd`);
  const diskStatus = () =>
    nbd.status().disks.find((d) => (d as { client: string }).client === CLIENT) as
      | { state: string; connectedAt: string | null; lastError: { reason: string } | null }
      | undefined;

  before(async () => {
    work = await mkdtemp(join(tmpdir(), 'rtftp-nbdt-'));
    root = join(work, 'root');
    await mkdir(join(root, 'default'), { recursive: true });
    await mkdir(join(root, CLIENT, 'grub'), { recursive: true });
    await writeFile(join(root, 'default', 'pxelinux.0'), 'default pxe');
    await writeFile(join(root, 'default', 'vmlinuz'), 'default kernel');
    await writeFile(join(root, CLIENT, 'grub', 'grub.cfg'), 'client dir grub');
    // Special files in the root fs: a FIFO, a device node (root only: mknod) and a socket.
    disk = await buildBootDisk(
      work,
      100,
      [],
      SPECIALS.map((s) => ({ path: `boot/${s.name}`, special: s.kind })),
    );
    mbr = await startNbdkit({
      partitions: [disk.efiImage, disk.rootImage],
      table: 'mbr',
      exportName: 'client',
    });
    nbd = createNbdSource({
      root,
      logger,
      metrics,
      idleTimeoutS: 10,
      diskWaitS: 200,
      maxSessions: 4,
      applianceMemoryMiB: 256,
      tcgCacheMiB: 64,
      workDir: join(work, 'w'),
      applianceCacheDir: join(tmpdir(), 'rtftp-test-appliance-cache'),
      kvm: 'off',
      readTimeoutS: 5,
      refreshAfterS: 1,
    });
    chain = [
      dirSource('client-dir', (ip) => join(root, ip)),
      nbd.source,
      dirSource('default', () => join(root, 'default')),
    ];
    await nbd.start();
  });

  after(async () => {
    await nbd?.stop();
    await mbr?.stop();
    await gpt?.stop();
    const left = await pidsMentioning(join(work, 'w'));
    await rm(work, { recursive: true, force: true });
    assert.deepEqual(left, [], 'no guestfish or qemu left after stop()');
  });

  it('connects the disk when its config appears, before any request', async () => {
    const written = Date.now();
    await writeFile(
      configPath(),
      renderNbdConfig({ url: mbr.url, mounts: BOOT_DISK_MOUNTS, tftpRoot: '/boot' }),
    );
    await waitFor('disk connected', () => diskStatus()?.state === 'connected', LAUNCH_MS, 200);
    const connected = lines.find((l) => l.msg === 'Disk connected');
    assert.equal(connected?.backend, 'guestfs');
    assert.ok(lines.some((l) => l.msg === 'NBD config added' && l.client === CLIENT));
    console.log(`# config written → disk connected: ${Date.now() - written} ms`);
    const started = Date.now();
    assert.deepEqual(await fetchInView(chain, CLIENT, 'vmlinuz-6.1'), {
      source: 'nbd',
      text: 'kernel 6.1',
    });
    console.log(`# first open + read once connected: ${Date.now() - started} ms`);
  });

  it('serves client dir before disk before default/, symlinks inside tftp_root only', async () => {
    assert.deepEqual(await fetchInView(chain, CLIENT, 'grub/grub.cfg'), {
      source: 'client-dir',
      text: 'client dir grub',
    });
    assert.deepEqual(await fetchInView(chain, CLIENT, 'vmlinuz'), {
      source: 'nbd',
      text: 'kernel 6.1',
    });
    assert.deepEqual(await fetchInView(chain, CLIENT, 'efi/EFI/BOOT/BOOTX64.EFI'), {
      source: 'nbd',
      text: 'shim v1',
    });
    assert.deepEqual(await fetchInView(chain, CLIENT, 'pxelinux.0'), {
      source: 'default',
      text: 'default pxe',
    });
    assert.equal((await fetchInView(chain, CLIENT, 'escape')).source, 'refused');
    assert.deepEqual(
      await fetchInView(chain, CLIENT, 'grub'),
      { source: 'refused', text: 'is a directory' },
      'a directory is not served',
    );
    // Only regular files: guestfish's statns names what each is, nothing is pread.
    for (const s of SPECIALS) {
      assert.deepEqual(await fetchInView(chain, CLIENT, s.name), {
        source: 'refused',
        text: s.reason,
      });
    }
    assert.deepEqual(await fetchInView(chain, '127.0.0.6', 'vmlinuz'), {
      source: 'default',
      text: 'default kernel',
    });
  });

  it('streams a 100 MiB file byte-identical', async () => {
    const r = await nbd.source.open(
      { clientIp: CLIENT, components: ['efi', 'big.img'], raw: 'efi/big.img' },
      never,
    );
    assert.equal(r.status, 'found');
    if (r.status !== 'found') return;
    assert.equal(r.file.size, 100 * 1024 * 1024);
    assert.equal(r.location, `${CLIENT}.nbd:/boot/efi/big.img`);
    const started = Date.now();
    const got = await hashOpenedFile(r.file);
    await r.file.close();
    const ms = Date.now() - started;
    assert.equal(got.bytes, 100 * 1024 * 1024);
    assert.equal(got.sha256, disk.bigSha256);
    console.log(`# 100 MiB through the source: ${ms} ms, ${((100 / ms) * 1000).toFixed(1)} MiB/s`);
    const read = await metrics.nbdReadBytes.get();
    assert.ok((read.values[0]?.value ?? 0) >= 100 * 1024 * 1024);
  });

  it('serves a file replaced inside the image (FAT and ext4) on the next open, same session', async () => {
    const connectedAt = diskStatus()?.connectedAt;
    await replaceFileInImage(disk.efiImage, 'vfat', '/EFI/BOOT/BOOTX64.EFI', 'shim v2, longer');
    await replaceFileInImage(disk.rootImage, 'ext4', '/boot/vmlinuz-6.1', 'kernel 6.1 upgraded');
    await new Promise((r) => setTimeout(r, 1200)); // the next boot comes after a quiet period
    const started = Date.now();
    assert.deepEqual(await fetchInView(chain, CLIENT, 'efi/EFI/BOOT/BOOTX64.EFI'), {
      source: 'nbd',
      text: 'shim v2, longer',
    });
    console.log(`# open after a quiet period (remount included): ${Date.now() - started} ms`);
    assert.deepEqual(await fetchInView(chain, CLIENT, 'vmlinuz'), {
      source: 'nbd',
      text: 'kernel 6.1 upgraded',
    });
    assert.equal(diskStatus()?.connectedAt, connectedAt, 'no reconnect');
    const remount = lines.find((l) => l.msg === 'Disk remounted');
    assert.ok(remount, 'remounted');
    console.log(`# remount: ${remount.durationMs} ms`);
  });

  it('fails a transfer whose qemu is killed, keeps serving others, relaunches on the next request', async () => {
    const r = await nbd.source.open(
      { clientIp: CLIENT, components: ['efi', 'big.img'], raw: 'big' },
      never,
    );
    assert.equal(r.status, 'found');
    if (r.status !== 'found') return;
    const qemu = await pidsMentioning(join(work, 'w'), 'qemu-system');
    assert.equal(qemu.length, 1);
    if (nbd.status().kvmAvailable === false) {
      // Under TCG the appliance runs through bin/qemu-tcg-wrapper.sh (a smaller cache).
      const argv = (await readFile(`/proc/${qemu[0]}/cmdline`)).toString().split('\0');
      assert.ok(argv.includes('tcg,tb-size=64'), `qemu ran as: ${argv.join(' ')}`);
    }
    let killed = false;
    await assert.rejects(
      hashOpenedFile(r.file, 65464, (pos) => {
        if (!killed && pos > 10 * 1024 * 1024) {
          killed = true;
          process.kill(qemu[0]!, 'SIGKILL');
        }
      }),
      (err: Error & { code?: string }) =>
        typeof err.code === 'string' && err.code.startsWith('RTFTP_ERR_NBD'),
    );
    await r.file.close();
    // Another client, and this client's local files, are not held up.
    assert.deepEqual(await fetchInView(chain, '127.0.0.6', 'pxelinux.0'), {
      source: 'default',
      text: 'default pxe',
    });
    assert.equal((await fetchInView(chain, CLIENT, 'grub/grub.cfg')).source, 'client-dir');
    // The next disk request waits for a new appliance instead of failing.
    const started = Date.now();
    assert.deepEqual(await fetchInView(chain, CLIENT, 'vmlinuz'), {
      source: 'nbd',
      text: 'kernel 6.1 upgraded',
    });
    console.log(`# relaunch after qemu was killed, request waited ${Date.now() - started} ms`);
    assert.equal(diskStatus()?.state, 'connected');
  });

  it('closes the disk after the idle timeout', async () => {
    await waitFor('idle disconnect', () => diskStatus()?.state === 'disconnected', 20_000, 200);
    await waitFor(
      'appliance gone',
      async () => (await pidsMentioning(join(work, 'w'), 'qemu-system')).length === 0,
      10_000,
    );
    assert.ok(lines.some((l) => l.msg === 'Disk disconnected' && /idle/.test(String(l.reason))));
  });

  it('reconnects when the config is edited (GPT disk, lazy), a request waiting for it', async () => {
    gpt = await startNbdkit({
      partitions: [disk.efiImage, disk.rootImage],
      table: 'gpt',
      exportName: 'gpt',
    });
    await writeFile(
      configPath() + '.tmp',
      renderNbdConfig({
        url: gpt.url,
        mounts: BOOT_DISK_MOUNTS,
        tftpRoot: '/boot',
        prefetch: false,
      }),
    );
    const { rename } = await import('node:fs/promises');
    await rename(configPath() + '.tmp', configPath());
    await waitFor('config changed', () => lines.some((l) => l.msg === 'NBD config changed'), 5000);
    assert.equal(diskStatus()?.state, 'disconnected', 'prefetch false: not connected yet');
    assert.deepEqual(await fetchInView(chain, CLIENT, 'grub/grub.cfg'), {
      source: 'client-dir',
      text: 'client dir grub',
    });
    await unlink(join(root, CLIENT, 'grub', 'grub.cfg'));
    assert.deepEqual(await fetchInView(chain, CLIENT, 'grub/grub.cfg'), {
      source: 'nbd',
      text: 'disk grub',
    });
    const status = nbd.status().configs as { file: string; url: string }[];
    assert.equal(status[0]?.url, gpt.url);
  });

  it('fails a transfer when the NBD server is killed mid-way, then falls through to default/', async () => {
    const r = await nbd.source.open(
      { clientIp: CLIENT, components: ['efi', 'big.img'], raw: 'big' },
      never,
    );
    assert.equal(r.status, 'found');
    if (r.status !== 'found') return;
    let stopped: Promise<void> | undefined;
    const started = Date.now();
    await assert.rejects(
      hashOpenedFile(r.file, 65464, (pos) => {
        if (!stopped && pos > 10 * 1024 * 1024) stopped = gpt!.stop();
      }),
    );
    await stopped;
    await r.file.close();
    console.log(
      `# read failed ${Date.now() - started} ms after the transfer started (server killed)`,
    );
    assert.deepEqual(await fetchInView(chain, CLIENT, 'vmlinuz'), {
      source: 'default',
      text: 'default kernel',
    });
    assert.ok((await metrics.nbdReadErrors.get()).values[0]?.value);
  });

  it('drops the disk and its processes when the config is deleted', async () => {
    await unlink(configPath());
    await waitFor('config removed', () => nbd.status().configs.length === 0, 5000);
    await waitFor(
      'no appliance left',
      async () => (await pidsMentioning(join(work, 'w'))).length === 0,
      15_000,
    );
    assert.equal((await stat(root)).isDirectory(), true);
  });
});
