/**
 * The README's first command: a demo root with a demo NBD disk, served on an
 * unprivileged port. Builds everything under .tmp/demo (afresh on each run), starts
 * nbdkit with a two-partition disk (FAT32 /boot + ext4 /) and rtftp in front of it,
 * prints how to fetch files with real TFTP clients, and stops both on Ctrl-C.
 */
import { spawn } from 'node:child_process';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { renderNbdConfig } from '../common/src/nbd-config.ts';
import { buildFilesystemImage } from '../dataplane/test/fixtures/disk-image.ts';
import { startNbdkit } from '../dataplane/test/fixtures/nbdkit.ts';

const repo = fileURLToPath(new URL('..', import.meta.url));
const port = Number(process.env.DEMO_PORT ?? 6969);
const metricsPort = Number(process.env.DEMO_METRICS_PORT ?? 9669);
const client = '127.0.0.1';

const dir = join(repo, '.tmp', 'demo');
const root = join(dir, 'root');
await rm(dir, { recursive: true, force: true });
await mkdir(join(root, 'default'), { recursive: true });
await mkdir(join(root, client), { recursive: true });
await writeFile(
  join(root, 'default', 'hello.txt'),
  'Served from default/: every client sees this file.\n',
);
await writeFile(
  join(root, client, 'only-for-me.txt'),
  `Served from ${client}/: only ${client} sees this file.\n`,
);

process.stdout.write('demo: building the demo disk (FAT32 /boot + ext4 /)...\n');
await buildFilesystemImage(join(dir, 'boot.img'), {
  fs: 'vfat',
  sizeMiB: 64,
  label: 'BOOT',
  files: [
    { path: 'config.txt', content: 'arm_64bit=1\nkernel=kernel8.img\n' },
    { path: 'cmdline.txt', content: 'console=serial0,115200 root=/dev/nbd0p2 rw\n' },
    { path: 'kernel8.img', content: Buffer.alloc(4 << 20, 'demo-kernel ') },
    { path: 'overlays/README', content: 'Device tree overlays would live here.\n' },
  ],
});
await buildFilesystemImage(join(dir, 'root.img'), {
  fs: 'ext4',
  sizeMiB: 32,
  label: 'root',
  files: [
    { path: 'boot', dir: true },
    { path: 'etc/hostname', content: 'demo-client\n' },
  ],
});
const nbd = await startNbdkit({
  partitions: [join(dir, 'boot.img'), join(dir, 'root.img')],
  table: 'mbr',
});
await writeFile(
  join(root, `${client}.nbd`),
  renderNbdConfig({
    url: nbd.url,
    mounts: [
      { partition: 2, mountpoint: '/' },
      { partition: 1, mountpoint: '/boot' },
    ],
    tftpRoot: '/boot',
  }),
);

const rtftp = spawn(
  process.execPath,
  [
    join(repo, 'bin', 'rtftp.js'),
    '--root',
    root,
    '--listen',
    client,
    '--port',
    String(port),
    '--metrics-port',
    String(metricsPort),
    '--metrics-listen',
    client,
  ],
  {
    stdio: ['ignore', 'pipe', 'inherit'],
    env: { ...process.env, RTFTP_WORK_DIR: join(dir, 'work') },
  },
);
const stop = async () => {
  rtftp.kill('SIGTERM');
  await nbd.stop();
};
process.on('SIGINT', () => void stop());
process.on('SIGTERM', () => void stop());

// Pass the server's log lines through; once it is listening, say how to use it.
let announced = false;
rtftp.stdout!.on('data', (chunk: Buffer) => {
  process.stdout.write(chunk);
  if (announced || !chunk.toString().includes('"msg":"Server listening"')) return;
  announced = true;
  process.stdout.write(
    [
      '',
      `demo: rtftp serves ${root} on ${client} UDP ${port}; the NBD disk of ${client} is ${nbd.url}`,
      `demo: fetch a file out of the demo disk with a real TFTP client:`,
      `        tftp ${client} ${port} -m binary -c get config.txt /dev/stdout`,
      `      from default/ and from the per-client dir:`,
      `        curl -s tftp://${client}:${port}/hello.txt   curl -s tftp://${client}:${port}/only-for-me.txt`,
      `      status and metrics: curl -s http://${client}:${metricsPort}/status  (…/metrics)`,
      `demo: Ctrl-C stops it.`,
      '',
    ].join('\n'),
  );
});

rtftp.on('exit', async (code) => {
  await nbd.stop();
  process.exit(code ?? 0);
});
