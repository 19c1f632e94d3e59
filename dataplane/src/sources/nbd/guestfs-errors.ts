/**
 * Turns libguestfs/qemu error text into the stable failure reasons of DiskError (the
 * `reason` label of rtftp_nbd_launch_failures_total) and messages naming the config
 * field at fault. The texts matched are the ones libguestfs 1.48 + qemu 7 print here.
 */
import { execFile } from 'node:child_process';
import type { NbdConfig } from '../../../../common/src/nbd-config.ts';
import { describeNbdEndpoint } from '../../../../common/src/nbd-url-redaction.ts';
import { DiskError } from '../disk-session.ts';
import type { DiskFailureReason } from '../disk-session.ts';
import { GuestfishError } from './guestfish-process.ts';

export function describeEndpoint(config: NbdConfig): string {
  const e = config.endpoint;
  const where = e.transport === 'tcp' ? `${e.host}:${e.port}` : e.socket;
  return `${where} export ${JSON.stringify(e.exportName)}`;
}

/** Reason of a failed `launch` (qemu could not open the NBD drive, or a timeout). */
export function classifyLaunchError(err: unknown, config: NbdConfig): DiskError {
  if (err instanceof DiskError) return err;
  const text = err instanceof Error ? err.message : String(err);
  const where = describeEndpoint(config);
  let reason: DiskFailureReason = 'other';
  let message = `disk ${where} did not launch: ${text}`;
  if (err instanceof GuestfishError && err.code === 'RTFTP_ERR_GUESTFISH_TIMEOUT') {
    reason = 'timeout';
    message = `disk ${where}: appliance launch timed out (${text})`;
  } else if (/connection refused|failed to connect to|failed to connect socket/i.test(text)) {
    reason = 'connection-refused';
    message = `url: NBD server ${where} is unreachable (connection refused)`;
  } else if (
    /requested export not available|export .* not found|unknown export|NBD_REP_ERR_UNKNOWN/i.test(
      text,
    )
  ) {
    reason = 'export-not-found';
    message = `url: NBD server ${where}: export not found`;
  } else if (/timed? ?out/i.test(text)) {
    reason = 'timeout';
  }
  return new DiskError(
    `RTFTP_ERR_NBD_${reason.toUpperCase().replace(/-/g, '_')}`,
    reason,
    message,
    {
      cause: err,
    },
  );
}

/** Reason of a failed `mount-ro` of mounts[index]. */
export function classifyMountError(err: unknown, config: NbdConfig, index: number): DiskError {
  if (!(err instanceof GuestfishError) || err.code !== 'RTFTP_ERR_GUESTFISH_COMMAND') {
    return classifyLaunchError(err, config);
  }
  const mount = config.mounts[index]!;
  const text = err.message;
  const field = `mounts[${index}]`;
  let reason: DiskFailureReason = 'mount-failed';
  let message = `${field}: mounting partition ${mount.partition} at ${mount.mountpoint} failed: ${text}`;
  if (/mount point is not a directory|mount point does not exist/i.test(text)) {
    message = `${field}.mountpoint: ${mount.mountpoint} is not a directory in the filesystems mounted before it`;
  } else if (/\/dev\/sd[a-z]+\d*: No such file or directory|not a block device/i.test(text)) {
    reason = 'partition-missing';
    message = `${field}.partition: the disk has no partition ${mount.partition}`;
  } else if (/wrong fs type|unknown filesystem type|bad superblock|not a valid/i.test(text)) {
    reason = 'unsupported-filesystem';
    message = `${field}.partition: partition ${mount.partition} holds no filesystem this appliance can mount (${text})`;
  }
  return new DiskError('RTFTP_ERR_NBD_MOUNT', reason, message, { cause: err });
}

/** A failure of the appliance itself during reads: the session is unusable. */
export function sessionFailure(err: unknown, what: string): DiskError {
  if (err instanceof DiskError) return err;
  const text = err instanceof Error ? err.message : String(err);
  const reason: DiskFailureReason =
    err instanceof GuestfishError && err.code === 'RTFTP_ERR_GUESTFISH_TIMEOUT'
      ? 'timeout'
      : 'other';
  return new DiskError('RTFTP_ERR_NBD_SESSION', reason, `${what}: ${text}`, { cause: err });
}

/**
 * libguestfs 1.48 hides why qemu could not open the drive ("qemu-img exited with error
 * status 1" unless LIBGUESTFS_DEBUG is on), so a failed launch asks qemu-img itself,
 * which says "Connection refused" or "Requested export not available". It is given the
 * endpoint the session was given (the address the NBD target gate checked), never the
 * config's URL: a name there would be resolved again.
 */
export function probeEndpointWithQemuImg(config: NbdConfig, timeoutMs = 15_000): Promise<string> {
  return new Promise((resolve) => {
    execFile(
      'qemu-img',
      ['info', '-f', 'raw', '--output=json', describeNbdEndpoint(config.endpoint)],
      { timeout: timeoutMs },
      (err, _stdout, stderr) => resolve(err ? stderr.trim() || err.message : ''),
    );
  });
}

export async function diagnoseLaunchError(err: unknown, config: NbdConfig): Promise<DiskError> {
  const first = classifyLaunchError(err, config);
  if (first.reason !== 'other') return first;
  const detail = await probeEndpointWithQemuImg(config);
  if (!detail) return first;
  const again = classifyLaunchError(new Error(detail, { cause: err }), config);
  return again.reason === 'other' ? first : again;
}
