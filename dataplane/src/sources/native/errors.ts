/**
 * Errors of the native reader. Every failure is a DiskError (disk-session.ts) with a stable
 * `code` and the `reason` the registry counts; helpers keep the codes in one place.
 */
import { DiskError } from '../disk-session.ts';
import type { DiskFailureReason } from '../disk-session.ts';

export const NativeErrorCode = {
  ConnectionRefused: 'RTFTP_ERR_NBD_CONNECTION_REFUSED',
  ConnectionLost: 'RTFTP_ERR_NBD_CONNECTION_LOST',
  Handshake: 'RTFTP_ERR_NBD_HANDSHAKE',
  ExportNotFound: 'RTFTP_ERR_NBD_EXPORT_NOT_FOUND',
  ReadFailed: 'RTFTP_ERR_NBD_READ_FAILED',
  Timeout: 'RTFTP_ERR_NBD_TIMEOUT',
  Closed: 'RTFTP_ERR_NBD_CLOSED',
  PartitionMissing: 'RTFTP_ERR_NATIVE_PARTITION_MISSING',
  MountFailed: 'RTFTP_ERR_NATIVE_MOUNT_FAILED',
  UnsupportedFilesystem: 'RTFTP_ERR_NATIVE_UNSUPPORTED_FS',
  Corrupt: 'RTFTP_ERR_NATIVE_CORRUPT',
  FileChanged: 'RTFTP_ERR_NATIVE_FILE_CHANGED',
  Aborted: 'RTFTP_ERR_NATIVE_ABORTED',
} as const;

export function diskError(
  code: string,
  reason: DiskFailureReason,
  message: string,
  cause?: unknown,
): DiskError {
  return new DiskError(code, reason, message, cause === undefined ? undefined : { cause });
}

/** The disk's structures say something impossible: a hostile or damaged image. */
export function corrupt(message: string, cause?: unknown): DiskError {
  return diskError(NativeErrorCode.Corrupt, 'corrupt', message, cause);
}

/** Throws a corrupt-disk error unless `ok`; keeps bounds checks one line each. */
export function check(ok: boolean, message: string): asserts ok {
  if (!ok) throw corrupt(message);
}

/** Any failure as a DiskError: a parser tripping on hostile bytes (RangeError…) is corruption. */
export function asDiskError(err: unknown, context: string): DiskError {
  if (err instanceof DiskError) return err;
  return corrupt(`${context}: ${(err as Error)?.message ?? String(err)}`, err);
}
