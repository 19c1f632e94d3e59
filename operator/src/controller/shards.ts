/**
 * How rendered configs are spread over ConfigMaps: a ConfigMap holds at most 1 MiB, so
 * 10,000 configs need several. A config's shard is a hash of its file name, so adding one
 * client rewrites one ConfigMap, not all of them.
 */
export const SHARD_PREFIX = 'rtftp-configs-';
/** The label on every rendered ConfigMap; the sync sidecar selects on it. */
export const RENDERED_LABEL = 'rtftp.io/rendered-configs';
export const RENDERED_SELECTOR = `${RENDERED_LABEL}=true`;

export function shardName(index: number): string {
  return SHARD_PREFIX + String(index).padStart(2, '0');
}

/** FNV-1a, 32 bit: stable across processes and versions (unlike any built-in hash). */
export function shardOf(fileName: string, shardCount: number): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < fileName.length; i++) {
    h ^= fileName.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h % shardCount;
}

/**
 * ConfigMap data keys allow only [-._a-zA-Z0-9]; IPv6 file names carry ':'. Addresses
 * never contain '_', so mapping ':' to '_' is reversible.
 */
export function configMapKeyOf(fileName: string): string {
  return fileName.replaceAll(':', '_');
}

export function fileNameOfConfigMapKey(key: string): string {
  return key.replaceAll('_', ':');
}

/** The label the operator puts on every ConfigMap it writes; with the name, its mark of ownership. */
export const MANAGED_BY_LABEL = 'app.kubernetes.io/managed-by';
export const MANAGED_BY_OPERATOR = 'rtftp-operator';

const SHARD_NAME = new RegExp(`^${SHARD_PREFIX}(\\d{2,3})$`);

/** The index in a shard name (`rtftp-configs-07` → 7), or null for any other name. */
export function shardNameIndex(name: string): number | null {
  const m = SHARD_NAME.exec(name);
  return m ? Number(m[1]) : null;
}

/**
 * The shard index of a ConfigMap the operator wrote, or null for any other: its name must
 * be a shard name and it must carry the operator's managed-by label. The label alone
 * proves nothing (whoever may create ConfigMaps there may set it); the name does, since
 * only the operator may update the shard names (RBAC resourceNames) and a name, once
 * taken, cannot be created again.
 */
export function shardIndexOf(cm: {
  metadata?: { name?: string; labels?: Record<string, string> };
}): number | null {
  if (cm.metadata?.labels?.[MANAGED_BY_LABEL] !== MANAGED_BY_OPERATOR) return null;
  return shardNameIndex(cm.metadata?.name ?? '');
}
