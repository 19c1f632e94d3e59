/**
 * Turns the file name a client sent into safe path components, or refuses it. This is
 * the one place that decides which names can ever reach a source.
 */
import { NBD_CONFIG_SUFFIX } from '../../../common/src/nbd-config.ts';

export const MAX_REQUEST_NAME_BYTES = 1024;

export type RequestPathResult =
  | { ok: true; components: string[] }
  | { ok: false; reason: 'too-long' | 'control-character' | 'traversal' | 'config-file' | 'empty' };

// Control characters C0, DEL and C1: nothing a boot file is named with.
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;

/**
 * A leading `/` is relative to the view (GRUB sends absolute names); `\` is `/`
 * (Windows/PXE clients); empty and `.` components are dropped; any `..` is refused,
 * never collapsed, as is a name ending in `.nbd` (configs are never served) whatever its case.
 */
export function parseRequestPath(name: string): RequestPathResult {
  if (Buffer.byteLength(name, 'utf8') > MAX_REQUEST_NAME_BYTES)
    return { ok: false, reason: 'too-long' };
  if (CONTROL.test(name)) return { ok: false, reason: 'control-character' };
  const components = name
    .replace(/\\/g, '/')
    .split('/')
    .filter((c) => c !== '' && c !== '.');
  if (components.some((c) => c === '..')) return { ok: false, reason: 'traversal' };
  if (components.length === 0) return { ok: false, reason: 'empty' };
  if (components.some((c) => c.toLowerCase().endsWith(NBD_CONFIG_SUFFIX))) {
    return { ok: false, reason: 'config-file' };
  }
  return { ok: true, components };
}
