/**
 * The native DiskSession against real nbdkit and images built by mkfs/mtools: freshness
 * (a kernel replaced inside the client is served new on its next open), a file replaced
 * during a transfer fails it, an uncheckpointed ext4 journal, transports, failures with
 * their reasons, metrics, and no VM process for a native disk.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createDataplaneMetrics } from '../src/metrics.ts';
import { NativeErrorCode, connectNative } from '../src/sources/native/index.ts';
import type { NativeConnectOptions } from '../src/sources/native/index.ts';
import { buildFilesystemImage, replaceFileInImage } from './fixtures/disk-image.ts';
import { runCommand } from './fixtures/run-command.ts';
import { freePort, startNbdkit } from './fixtures/nbdkit.ts';
import { spawn } from 'node:child_process';
import { connect } from 'node:net';
import type { RunningNbdkit } from './fixtures/nbdkit.ts';
import {
  nativeConfig,
  qemuDescendants,
  quietLogger,
  readThroughSession,
} from './native-test-support.ts';

const MOUNTS = [
  { partition: 2, mountpoint: '/' },
  { partition: 1, mountpoint: '/boot/firmware' },
];
const kernelV1 = Buffer.alloc(700_000, 'kernel v1 ');
const kernelV2 = Buffer.alloc(800_000, 'kernel v2 ');
let dir = '';
let boot = '';
let root = '';
const servers: RunningNbdkit[] = [];

async function serve(opts: Parameters<typeof startNbdkit>[0]): Promise<RunningNbdkit> {
  const s = await startNbdkit(opts);
  servers.push(s);
  return s;
}

function options(url: string, extra: Partial<NativeConnectOptions> = {}): NativeConnectOptions {
  return {
    config: nativeConfig(url, MOUNTS),
    configName: '10.0.0.5.nbd',
    logger: quietLogger,
    signal: new AbortController().signal,
    ...extra,
  };
}

async function waitForPort(port: number): Promise<void> {
  for (let i = 0; i < 100; i++) {
    const ok = await new Promise<boolean>((r) => {
      const c = connect({ host: '::1', port }, () => (c.destroy(), r(true)));
      c.once('error', () => r(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`nbdkit did not listen on [::1]:${port}`);
}

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'rtftp-native-session-'));
  boot = join(dir, 'boot.img');
  root = join(dir, 'root.img');
  await buildFilesystemImage(boot, {
    fs: 'vfat',
    sizeMiB: 32,
    files: [
      { path: 'config.txt', content: 'kernel=kernel8.img\n' },
      { path: 'kernel8.img', content: kernelV1 },
    ],
  });
  await buildFilesystemImage(root, {
    fs: 'ext4',
    sizeMiB: 32,
    files: [
      { path: 'boot/firmware', dir: true },
      { path: 'boot/vmlinuz-6.1', content: kernelV1 },
      { path: 'boot/vmlinuz', symlink: 'vmlinuz-6.1' },
    ],
  });
});

after(async () => {
  for (const s of servers) await s.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

test('serves a kernel replaced inside the client on the next open, on ext4 and FAT', async () => {
  const nbd = await serve({ partitions: [boot, root], table: 'gpt' });
  const session = await connectNative(options(nbd.url));
  try {
    assert.deepEqual(await readThroughSession(session, '/boot/vmlinuz'), kernelV1);
    assert.deepEqual(await readThroughSession(session, '/boot/firmware/KERNEL8.IMG'), kernelV1);
    await replaceFileInImage(root, 'ext4', '/boot/vmlinuz-6.1', kernelV2);
    await replaceFileInImage(boot, 'vfat', '/kernel8.img', kernelV2);
    assert.deepEqual(await readThroughSession(session, '/boot/vmlinuz'), kernelV2);
    assert.deepEqual(await readThroughSession(session, '/boot/firmware/kernel8.img'), kernelV2);
  } finally {
    await session.close();
  }
});

for (const fs of ['ext4', 'vfat'] as const) {
  test(`a file replaced during a transfer fails that transfer instead of serving a torn file (${fs})`, async () => {
    const nbd = await serve({ partitions: [boot, root], table: 'gpt' });
    const metrics = createDataplaneMetrics(undefined, false);
    const session = await connectNative(options(nbd.url, { metrics }));
    const [image, inImage, path] =
      fs === 'ext4'
        ? [root, '/boot/vmlinuz-6.1', '/boot/vmlinuz-6.1']
        : [boot, '/kernel8.img', '/boot/firmware/kernel8.img'];
    try {
      const r = await session.open(path, new AbortController().signal);
      assert.equal(r.status, 'found');
      if (r.status !== 'found') return;
      const buf = Buffer.alloc(r.file.size);
      await r.file.read(buf, 0, 65536, 0);
      await replaceFileInImage(
        image,
        fs,
        inImage,
        fs === 'ext4' ? kernelV1 : Buffer.alloc(10, 'x'),
      );
      const rest = async () => {
        for (let pos = 65536; pos < r.file.size; pos += 65536)
          await r.file.read(buf, pos, 65536, pos);
      };
      await assert.rejects(rest(), { code: NativeErrorCode.FileChanged });
      assert.equal(session.healthy, true, 'the disk itself is fine');
      assert.equal(session.stats.reconnects, 0);
      const readErrors = (await metrics.nbdReadErrors.get()).values;
      assert.equal(
        readErrors.reduce((n, v) => n + v.value, 0),
        0,
        'not an NBD read error',
      );
    } finally {
      await session.close();
    }
  });
}

test('an ext4 with an uncheckpointed journal is read at its home locations (no replay), without error', async () => {
  const image = join(dir, 'journal.img');
  await buildFilesystemImage(image, {
    fs: 'ext4',
    sizeMiB: 16,
    files: [{ path: 'vmlinuz', content: 'old kernel v1\n' }],
  });
  const { stdout } = await runCommand('debugfs', ['-R', 'blocks /vmlinuz', image]);
  const block = stdout.trim();
  const newBlock = join(dir, 'block');
  await writeFile(newBlock, 'new kernel v2\n');
  // A committed transaction that rewrites the file's block, left in the journal.
  await writeFile(join(dir, 'jcmd'), `jo\njw -b ${block} ${newBlock}\njc\n`);
  await runCommand('debugfs', ['-w', '-f', join(dir, 'jcmd'), image]);
  const { stdout: features } = await runCommand('dumpe2fs', ['-h', image]);
  assert.match(features, /needs_recovery/);
  const nbd = await serve({ image });
  const session = await connectNative({
    ...options(nbd.url),
    config: nativeConfig(nbd.url, [{ partition: 0, mountpoint: '/' }]),
  });
  try {
    assert.equal((await readThroughSession(session, '/vmlinuz')).toString(), 'old kernel v1\n');
  } finally {
    await session.close();
  }
});

test('connects over a unix socket and IPv6 loopback, with export names', async () => {
  const unix = await serve({
    partitions: [boot, root],
    table: 'mbr',
    unixSocket: true,
    exportName: 'pi-5',
  });
  const s1 = await connectNative(options(unix.url));
  assert.equal(
    (await readThroughSession(s1, '/boot/firmware/config.txt')).toString(),
    'kernel=kernel8.img\n',
  );
  await s1.close();
  await assert.rejects(connectNative(options(unix.url.replace('pi-5', 'other'))), {
    reason: 'export-not-found',
  });
  // IPv6 loopback: the fixture listens on 127.0.0.1 only, so nbdkit is started here.
  const port = await freePort();
  const v6 = spawn('nbdkit', [
    '--exit-with-parent',
    '-f',
    '-r',
    '-i',
    '::1',
    '-p',
    String(port),
    'partitioning',
    boot,
    root,
  ]);
  try {
    const url = `nbd://[::1]:${port}/`;
    await waitForPort(port);
    const s2 = await connectNative(options(url));
    assert.equal(
      (await readThroughSession(s2, '/boot/firmware/config.txt')).toString(),
      'kernel=kernel8.img\n',
    );
    await s2.close();
  } finally {
    v6.kill('SIGKILL');
    await new Promise((r) => v6.once('exit', r));
  }
  await assert.rejects(connectNative(options(`nbd://[::1]:${port}/`)), {
    reason: 'connection-refused',
  });
});

test('reports partition-missing, mount-failed and a hung server with their reasons', async () => {
  const nbd = await serve({ partitions: [boot, root], table: 'gpt' });
  const wrongMount = nativeConfig(nbd.url, [
    { partition: 2, mountpoint: '/' },
    { partition: 1, mountpoint: '/boot/efi' },
  ]);
  await assert.rejects(connectNative({ ...options(nbd.url), config: wrongMount }), {
    reason: 'mount-failed',
    message: /mounts\[1\]\.mountpoint \/boot\/efi/,
  });
  const noPart = nativeConfig(nbd.url, [{ partition: 4, mountpoint: '/' }]);
  await assert.rejects(connectNative({ ...options(nbd.url), config: noPart }), {
    reason: 'partition-missing',
  });
  nbd.pause();
  const started = Date.now();
  await assert.rejects(connectNative(options(nbd.url, { connectTimeoutMs: 500 })), {
    reason: 'timeout',
  });
  assert.ok(Date.now() - started < 3000);
  nbd.resume();
});

test('a read that gets no reply fails within the timeout; the session reconnects when the server is back', async () => {
  const nbd = await serve({ partitions: [boot, root], table: 'gpt' });
  const metrics = createDataplaneMetrics(undefined, false);
  const session = await connectNative(options(nbd.url, { readTimeoutMs: 500, metrics }));
  try {
    assert.deepEqual(
      await readThroughSession(session, '/boot/vmlinuz-6.1').then((b) => b.length > 0),
      true,
    );
    nbd.pause();
    const started = Date.now();
    await assert.rejects(readThroughSession(session, '/boot/firmware/config.txt'));
    assert.ok(Date.now() - started < 5000, 'never hangs');
    nbd.resume();
    assert.equal(
      (await readThroughSession(session, '/boot/firmware/config.txt')).toString(),
      'kernel=kernel8.img\n',
    );
    const text = await metrics.registry.metrics();
    assert.match(text, /rtftp_nbd_read_bytes_total\{backend="native"\} [1-9]/);
    // File data goes around the cache; it is counted all the same.
    const readBytes = Number(
      /rtftp_nbd_read_bytes_total\{backend="native"\} (\d+)/.exec(text)?.[1],
    );
    assert.ok(readBytes >= 700_000, `${readBytes} bytes counted for a 700 kB file and more`);
    assert.match(text, /rtftp_nbd_cache_hits_total [1-9]/);
  } finally {
    await session.close();
  }
});

test('starts no VM process for a disk served natively', async () => {
  const nbd = await serve({ partitions: [boot, root], table: 'gpt' });
  const sessions = await Promise.all(
    Array.from({ length: 5 }, () => connectNative(options(nbd.url))),
  );
  try {
    await Promise.all(sessions.map((s) => readThroughSession(s, '/boot/firmware/config.txt')));
    assert.deepEqual(qemuDescendants(), []);
  } finally {
    await Promise.all(sessions.map((s) => s.close()));
  }
});
