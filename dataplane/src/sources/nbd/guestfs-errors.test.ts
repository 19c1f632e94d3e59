import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { pino } from 'pino';
import { parseNbdConfig } from '../../../../common/src/nbd-config.ts';
import { GuestfishError, GuestfishProcess } from './guestfish-process.ts';
import { classifyLaunchError, classifyMountError } from './guestfs-errors.ts';

const parsed = parseNbdConfig(
  JSON.stringify({
    url: 'nbd://127.0.0.1:10809/disk',
    mounts: [
      { partition: 2, mountpoint: '/' },
      { partition: 1, mountpoint: '/boot/efi' },
    ],
    tftp_root: '/boot',
  }),
);
assert.ok(parsed.ok);
const config = parsed.config;
const cmdError = (text: string) =>
  new GuestfishError('RTFTP_ERR_GUESTFISH_COMMAND', 'mount-ro', text);

describe('guestfs failure reasons (texts as libguestfs 1.48 / qemu 7 print them)', () => {
  it('classifies launch failures', () => {
    const refused = classifyLaunchError(
      new Error(
        "Could not open 'nbd://127.0.0.1:1/x': Failed to connect to '127.0.0.1:1': Connection refused",
      ),
      config,
    );
    assert.equal(refused.reason, 'connection-refused');
    assert.match(refused.message, /^url: /);
    assert.equal(
      classifyLaunchError(
        new Error("Could not open 'nbd://h/missing': Requested export not available"),
        config,
      ).reason,
      'export-not-found',
    );
    assert.equal(
      classifyLaunchError(
        new GuestfishError('RTFTP_ERR_GUESTFISH_TIMEOUT', 'launch', 'no progress'),
        config,
      ).reason,
      'timeout',
    );
    const other = classifyLaunchError(
      new Error('qemu-img: /tmp/x/overlay1.qcow2: qemu-img exited with error status 1.'),
      config,
    );
    assert.equal(other.reason, 'other');
    assert.equal(other.code, 'RTFTP_ERR_NBD_OTHER');
  });

  it('names the mounts field at fault', () => {
    const part = classifyMountError(
      cmdError('mount_ro: mount_ro_stub: /dev/sda9: No such file or directory'),
      config,
      1,
    );
    assert.equal(part.reason, 'partition-missing');
    assert.match(part.message, /^mounts\[1\]\.partition: the disk has no partition 1/);
    const mp = classifyMountError(
      cmdError('mount_ro: mount: /boot/efi: mount point is not a directory'),
      config,
      1,
    );
    assert.equal(mp.reason, 'mount-failed');
    assert.match(mp.message, /^mounts\[1\]\.mountpoint: \/boot\/efi is not a directory/);
    const fs = classifyMountError(
      cmdError(
        "mount_ro: /dev/sda2 on / (options: 'ro'): mount: /sysroot: wrong fs type, bad option, bad superblock on /dev/sda2",
      ),
      config,
      0,
    );
    assert.equal(fs.reason, 'unsupported-filesystem');
    assert.match(fs.message, /^mounts\[0\]\.partition: /);
  });

  it('fails commands at once when guestfish cannot be run', async () => {
    const p = new GuestfishProcess({
      env: process.env,
      logger: pino({ level: 'silent' }),
      guestfishPath: '/nonexistent/guestfish',
    });
    await assert.rejects(
      p.run('version', [], 60_000),
      (err: GuestfishError) => err.code === 'RTFTP_ERR_GUESTFISH_EXITED',
    );
    assert.equal(p.exited, true);
  });
});
