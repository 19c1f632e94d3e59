/**
 * Which rendered ConfigMaps the sync sidecar serves: only the shards the operator wrote.
 * The label selector finds candidates, but anyone who may create a ConfigMap in the
 * namespace can set a label; so a ConfigMap is served only when
 * - its name is one of the operator's shard names, `rtftp-configs-00` … `-(N-1)` for the
 *   operator's --shards N (RBAC lets only the operator update those names, and a name that
 *   exists cannot be created by anyone else), and
 * - it carries the operator's managed-by label.
 * Everything else is ignored, logged once per object version, and counted
 * (rtftp_operator_sync_ignored_configmaps_total{reason}).
 */
import { clientIpOfConfigName } from '../../../common/src/nbd-config.ts';
import type { RenderedConfigMap } from '../controller/controller.ts';
import {
  MANAGED_BY_LABEL,
  MANAGED_BY_OPERATOR,
  fileNameOfConfigMapKey,
  shardName,
  shardNameIndex,
} from '../controller/shards.ts';

export type IgnoredReason = 'name' | 'owner';

/** Null when the sidecar may serve it; otherwise why not. */
export function untrustedReason(cm: RenderedConfigMap, shardCount: number): IgnoredReason | null {
  const index = shardNameIndex(cm.metadata?.name ?? '');
  if (index === null || index >= shardCount) return 'name';
  if (cm.metadata?.labels?.[MANAGED_BY_LABEL] !== MANAGED_BY_OPERATOR) return 'owner';
  return null;
}

/** The union of the trusted shards' configs; keys that are not `<canonical ip>.nbd` (claims) are skipped. */
export function desiredFiles(configMaps: Iterable<RenderedConfigMap>): Map<string, string> {
  const out = new Map<string, string>();
  for (const cm of configMaps)
    for (const [key, text] of Object.entries(cm.data ?? {})) {
      const name = fileNameOfConfigMapKey(key);
      if (clientIpOfConfigName(name) !== null) out.set(name, text);
    }
  return out;
}

export type ShardListing =
  | { complete: true; files: Map<string, string>; resourceVersions: Record<string, string> }
  | { complete: false; missing: string[] };

/**
 * The snapshot the trusted shards make, when it is complete: every shard name of the
 * operator's `--shards N` present (its first render creates all N, empty ones too). Before
 * that, serving the union would serve `default/` to clients whose shard is not written yet.
 */
export function shardListing(
  trusted: Iterable<RenderedConfigMap>,
  shardCount: number,
): ShardListing {
  const byName = new Map<string, RenderedConfigMap>();
  for (const cm of trusted) byName.set(cm.metadata?.name ?? '', cm);
  const missing: string[] = [];
  const resourceVersions: Record<string, string> = {};
  for (let i = 0; i < shardCount; i++) {
    const name = shardName(i);
    const cm = byName.get(name);
    if (cm) resourceVersions[name] = cm.metadata?.resourceVersion ?? '';
    else missing.push(name);
  }
  if (missing.length) return { complete: false, missing };
  return { complete: true, files: desiredFiles(byName.values()), resourceVersions };
}

/**
 * Splits the informer's ConfigMaps into the trusted ones and the rest, reporting each
 * ignored object version once through `onIgnored`.
 */
export class ShardTrust {
  private readonly reported = new Map<string, string>();

  constructor(
    private readonly shardCount: number,
    private readonly onIgnored: (cm: RenderedConfigMap, reason: IgnoredReason) => void,
  ) {}

  trusted(configMaps: Iterable<RenderedConfigMap>): RenderedConfigMap[] {
    const out: RenderedConfigMap[] = [];
    const present = new Set<string>();
    for (const cm of configMaps) {
      const reason = untrustedReason(cm, this.shardCount);
      if (reason === null) {
        out.push(cm);
        continue;
      }
      const name = cm.metadata?.name ?? '';
      const version = cm.metadata?.resourceVersion ?? '';
      present.add(name);
      if (this.reported.get(name) !== version) {
        this.reported.set(name, version);
        this.onIgnored(cm, reason);
      }
    }
    // Bounded by the ConfigMaps that exist: forget the ones that went away.
    for (const name of this.reported.keys()) if (!present.has(name)) this.reported.delete(name);
    return out;
  }
}
