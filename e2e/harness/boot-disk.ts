/**
 * A client's own disk, as a network-booting machine has it: a FAT32 partition mounted
 * at /boot holding the boot files, and an ext4 root with an empty /boot, behind an MBR
 * or GPT table, served by a real nbdkit. The `.nbd` config points at a socket path the
 * harness owns (a symlink to nbdkit's socket), so nbdkit can be stopped and started
 * again under the same URL — "the disk went away and came back" — without touching the
 * config, and a unix socket reaches into the dataplane's network namespace.
 */
import { rename, rm, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { renderNbdConfig } from '../../common/src/nbd-config.ts';
import type { NbdBackend } from '../../common/src/nbd-config.ts';
import {
  buildFilesystemImage,
  replaceFileInImage,
} from '../../dataplane/test/fixtures/disk-image.ts';
import type { FileSpec } from '../../dataplane/test/fixtures/disk-image.ts';
import { startNbdkit } from '../../dataplane/test/fixtures/nbdkit.ts';
import type { RunningNbdkit } from '../../dataplane/test/fixtures/nbdkit.ts';

export interface BootDiskOptions {
  /** Private dir for the images and the socket link. */
  dir: string;
  name: string;
  table: 'mbr' | 'gpt';
  /** Files of the /boot partition (paths relative to /boot). */
  bootFiles: FileSpec[];
}

/** Where the dataplane finds a client's boot files inside its disk. */
export const DISK_MOUNTS = [
  { partition: 2, mountpoint: '/' },
  { partition: 1, mountpoint: '/boot' },
];

export class BootDisk {
  private nbd: RunningNbdkit | undefined;

  private constructor(
    readonly opts: BootDiskOptions,
    readonly bootImage: string,
    readonly rootImage: string,
    /** The stable socket path the config names. */
    readonly socketLink: string,
  ) {}

  static async create(opts: BootDiskOptions): Promise<BootDisk> {
    const bootImage = join(opts.dir, `${opts.name}-boot.vfat`);
    const rootImage = join(opts.dir, `${opts.name}-root.ext4`);
    // 64 MiB is the smallest size the fixture formats as FAT32.
    await buildFilesystemImage(bootImage, {
      fs: 'vfat',
      sizeMiB: 64,
      label: 'BOOT',
      files: opts.bootFiles,
    });
    await buildFilesystemImage(rootImage, {
      fs: 'ext4',
      sizeMiB: 16,
      label: 'root',
      files: [
        { path: 'boot', dir: true },
        { path: 'etc/hostname', content: `${opts.name}\n` },
      ],
    });
    const disk = new BootDisk(opts, bootImage, rootImage, join(opts.dir, `${opts.name}.sock`));
    await disk.startServer();
    return disk;
  }

  get url(): string {
    return `nbd+unix:///?socket=${this.socketLink}`;
  }

  /** The `<ip>.nbd` text for this disk, rendered by the one module that owns the format. */
  config(backend?: NbdBackend): string {
    return renderNbdConfig({ url: this.url, mounts: DISK_MOUNTS, tftpRoot: '/boot', backend });
  }

  async writeConfig(root: string, clientIp: string, backend?: NbdBackend): Promise<void> {
    // Written whole under another name and renamed: the watcher never sees half a file.
    const tmp = join(root, `.${clientIp}.nbd.tmp`);
    await writeFile(tmp, this.config(backend));
    await rename(tmp, join(root, `${clientIp}.nbd`));
  }

  async startServer(): Promise<void> {
    if (this.nbd) return;
    this.nbd = await startNbdkit({
      partitions: [this.bootImage, this.rootImage],
      table: this.opts.table,
      unixSocket: true,
    });
    await rm(this.socketLink, { force: true });
    await symlink(this.nbd.socket!, this.socketLink);
  }

  /** Stops nbdkit: the disk is unreachable (the link dangles) until startServer(). */
  async stopServer(): Promise<void> {
    const nbd = this.nbd;
    this.nbd = undefined;
    await nbd?.stop();
  }

  /** "The client upgraded its kernel": replaces a file on the /boot partition in place. */
  replaceBootFile(path: string, content: Buffer): Promise<void> {
    return replaceFileInImage(this.bootImage, 'vfat', path, content);
  }

  async close(): Promise<void> {
    await this.stopServer();
    await rm(this.socketLink, { force: true });
  }
}
