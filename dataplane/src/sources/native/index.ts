/**
 * The native disk backend: NBD + partition table + FAT/ext read in-process, no VM.
 * `connectNative` is a DiskConnector. There is no separate probe: under `backend: auto`
 * the registry calls connectNative and falls back to libguestfs when it rejects with
 * reason 'unsupported-filesystem' (decided at connect time, per disk).
 */
import type { DiskConnector } from '../disk-session.ts';
import { connectNative } from './connect-native.ts';

export type { NativeConnectOptions } from './connect-native.ts';
export type { NativeDiskSession } from './native-session.ts';
export { NativeErrorCode } from './errors.ts';
export { REVALIDATE_BYTES } from './native-session.ts';

export { connectNative };
/** connectNative is a DiskConnector (checked here); it also takes NativeConnectOptions. */
export const nativeConnector: DiskConnector = connectNative;

/** True when a failed native connect means "use libguestfs for this disk" under `auto`. */
export function shouldFallBackToGuestfs(err: unknown): boolean {
  return (err as { reason?: string } | null)?.reason === 'unsupported-filesystem';
}
