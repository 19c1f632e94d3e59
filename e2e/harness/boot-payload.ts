/**
 * What the VMs boot: the host's Debian kernel and a tiny initrd made by the test, whose
 * /init prints a marker carrying a nonce made for this run and powers the VM off. The
 * nonce is only inside the initrd (never on the kernel command line, which the kernel
 * echoes), so only this run's initrd, really booted, can print it.
 */
import { randomBytes } from 'node:crypto';
import { chmod, copyFile, mkdir, mkdtemp, readdir, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawn } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { pipeline } from 'node:stream/promises';
import { createGzip } from 'node:zlib';
import { HarnessError } from './processes.ts';
import { run } from './boot-network.ts';

/** Kernel command line for every payload: serial console, and a panic ends the VM. */
export const KERNEL_ARGS = 'console=ttyS0 panic=-1 quiet';

/** The newest /boot/vmlinuz-* (linux-image-amd64), or null when there is none. */
export async function findHostKernel(): Promise<string | null> {
  const names = (await readdir('/boot').catch(() => [] as string[]))
    .filter((n) => n.startsWith('vmlinuz-'))
    .sort();
  const last = names.at(-1);
  return last ? join('/boot', last) : null;
}

export function makeNonce(): string {
  return randomBytes(6).toString('hex');
}

/** The line an initrd prints; tests wait for exactly this. */
export function markerText(label: string, nonce: string): string {
  return `RTFTP-E2E-BOOTED ${label} ${nonce}`;
}

/**
 * Writes a gzip'd newc cpio initrd to `dest`: busybox-static as /bin/sh and an /init
 * that prints `markerText(label, nonce)` on the console and powers off at once.
 */
export async function buildMarkerInitrd(dest: string, label: string, nonce: string) {
  const stage = await mkdtemp(join(tmpdir(), 'rtftp-initrd-'));
  try {
    await mkdir(join(stage, 'bin'));
    await mkdir(join(stage, 'dev'));
    await copyFile('/usr/bin/busybox', join(stage, 'bin/busybox'));
    await symlink('busybox', join(stage, 'bin/sh'));
    // The kernel's own initramfs has /dev/console too; ours must not depend on it.
    await run('mknod', ['-m', '600', join(stage, 'dev/console'), 'c', '5', '1']);
    // The marker is assembled at run time so the literal never sits in the file whole.
    const [head, rest] = [nonce.slice(0, 4), nonce.slice(4)];
    const init = [
      '#!/bin/sh',
      `n="${head}"`,
      `echo "${markerText(label, '')}\${n}${rest}"`,
      '/bin/busybox poweroff -f',
      '',
    ].join('\n');
    await writeFile(join(stage, 'init'), init);
    await chmod(join(stage, 'init'), 0o755);
    await writeCpioGz(stage, dest);
  } finally {
    await rm(stage, { recursive: true, force: true });
  }
}

function writeCpioGz(stageDir: string, dest: string): Promise<void> {
  // `find | cpio -o -H newc`, gzip'd here: the kernel unpacks exactly this.
  const cpio = spawn('sh', ['-c', 'find . | cpio -o -H newc --quiet'], {
    cwd: stageDir,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  cpio.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<number | null>((r) => cpio.once('exit', r));
  return pipeline(cpio.stdout, createGzip({ level: 1 }), createWriteStream(dest)).then(async () => {
    const code = await exited;
    if (code !== 0) throw new HarnessError('E2E_ERR_CPIO', `cpio failed: ${stderr}`);
  });
}

/** The iPXE script a client fetches first: kernel and initrd by names relative to it. */
export function ipxeScript(kernel = 'vmlinuz', initrd = 'initrd.gz'): string {
  return `#!ipxe\nkernel ${kernel} ${KERNEL_ARGS}\ninitrd ${initrd}\nboot\n`;
}

/** grub.cfg for grubnetx64.efi, which asks for absolute paths. */
export function grubConfig(kernel = '/vmlinuz', initrd = '/initrd.gz'): string {
  return `set timeout=0\nlinux ${kernel} ${KERNEL_ARGS}\ninitrd ${initrd}\nboot\n`;
}

/** A boot partition's files: iPXE script, GRUB config, kernel, initrd. */
export function bootFiles(kernel: string, initrd: string) {
  return [
    { path: 'boot.ipxe', content: ipxeScript() },
    { path: 'grub/grub.cfg', content: grubConfig() },
    { path: 'vmlinuz', fromFile: kernel },
    { path: 'initrd.gz', fromFile: initrd },
  ];
}

/** pxelinux.cfg/default that boots the given kernel and initrd at once. */
export function pxelinuxConfig(kernel = 'vmlinuz', initrd = 'initrd.gz'): string {
  return `DEFAULT boot\nPROMPT 0\nTIMEOUT 0\nLABEL boot\n  KERNEL ${kernel}\n  INITRD ${initrd}\n  APPEND ${KERNEL_ARGS}\n`;
}
