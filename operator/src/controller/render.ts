/**
 * The pure core of the operator: from the full set of BootClients, the full set of
 * `<ip>.nbd` configs (sharded into ConfigMaps) and the conditions every BootClient
 * should carry. Deterministic: the same set in any order gives the same result.
 */
import {
  bootClientKey,
  validateBootClientSpec,
  type BootClient,
  type BootClientValidation,
} from '../../../common/src/bootclient.ts';
import { formatProblems } from '../../../common/src/nbd-config.ts';
import { configMapKeyOf, shardOf, shardName } from './shards.ts';

/** A condition without its transition time: what render decides, before merging with history. */
export interface DesiredCondition {
  type: 'Accepted' | 'Rendered' | 'Conflict';
  status: 'True' | 'False';
  reason: string;
  message: string;
}

export interface DesiredStatus {
  observedGeneration: number;
  conditions: DesiredCondition[];
}

export interface RenderOptions {
  shardCount: number;
  /** Bytes of data one ConfigMap may hold (the API server's limit is 1 MiB for the whole object). */
  maxShardBytes: number;
}

export interface RenderResult {
  /** fileName → file text, for every config that made it into a shard. */
  configs: Map<string, string>;
  /** ConfigMap name → (data key → text); every shard present, empty ones too. */
  shards: Map<string, Map<string, string>>;
  /** BootClient key (`namespace/name`) → its desired status. */
  statuses: Map<string, DesiredStatus>;
}

export const DEFAULT_RENDER_OPTIONS: RenderOptions = { shardCount: 16, maxShardBytes: 900 * 1024 };

function olderFirst(a: BootClient, b: BootClient): number {
  const ta = a.metadata.creationTimestamp ?? '';
  const tb = b.metadata.creationTimestamp ?? '';
  if (ta !== tb) return ta < tb ? -1 : 1;
  const ka = bootClientKey(a.metadata);
  const kb = bootClientKey(b.metadata);
  return ka < kb ? -1 : ka > kb ? 1 : 0;
}

const accepted: DesiredCondition = {
  type: 'Accepted',
  status: 'True',
  reason: 'Valid',
  message: 'spec is valid',
};

/** Validates one BootClient's spec; the shell passes a memoised one (see memoiseValidation). */
export type SpecValidator = (bc: BootClient) => BootClientValidation;

const validateFresh: SpecValidator = (bc) => validateBootClientSpec(bc.spec);

/**
 * A validator that remembers results by uid and generation (the API server bumps the
 * generation on every spec change), so re-rendering 10,000 unchanged BootClients does not
 * re-parse 10,000 URLs. Holds one entry per live object; call prune() after a render.
 */
export function memoiseValidation(): SpecValidator & {
  prune(live: { has(key: string): boolean }): void;
} {
  const memo = new Map<string, { uid: string; generation: number; result: BootClientValidation }>();
  const validate = (bc: BootClient) => {
    const key = bootClientKey(bc.metadata);
    const uid = bc.metadata.uid ?? '';
    const generation = bc.metadata.generation ?? -1;
    const hit = memo.get(key);
    if (hit && uid && hit.uid === uid && hit.generation === generation) return hit.result;
    const result = validateBootClientSpec(bc.spec);
    memo.set(key, { uid, generation, result });
    return result;
  };
  return Object.assign(validate, {
    prune(live: { has(key: string): boolean }) {
      for (const key of memo.keys()) if (!live.has(key)) memo.delete(key);
    },
  });
}

export function render(
  bootClients: Iterable<BootClient>,
  options: RenderOptions,
  validate: SpecValidator = validateFresh,
): RenderResult {
  const statuses = new Map<string, DesiredStatus>();
  const holders = new Map<string, { bc: BootClient; fileName: string; text: string }>();
  const live = [...bootClients].filter((bc) => !bc.metadata.deletionTimestamp).sort(olderFirst);
  const losers: { key: string; generation: number; ip: string }[] = [];

  for (const bc of live) {
    const key = bootClientKey(bc.metadata);
    const generation = bc.metadata.generation ?? 0;
    const v = validate(bc);
    if (!v.ok) {
      const message = formatProblems(v.problems);
      statuses.set(key, {
        observedGeneration: generation,
        conditions: [
          { type: 'Accepted', status: 'False', reason: 'Invalid', message },
          { type: 'Rendered', status: 'False', reason: 'Invalid', message: 'spec is invalid' },
        ],
      });
      continue;
    }
    if (holders.has(v.clientIp)) losers.push({ key, generation, ip: v.clientIp });
    else holders.set(v.clientIp, { bc, fileName: v.fileName, text: v.text });
  }

  const acceptedWith = (
    generation: number,
    rendered: [DesiredCondition['status'], string, string],
    conflict: [DesiredCondition['status'], string, string],
  ): DesiredStatus => ({
    observedGeneration: generation,
    conditions: [
      accepted,
      { type: 'Rendered', status: rendered[0], reason: rendered[1], message: rendered[2] },
      { type: 'Conflict', status: conflict[0], reason: conflict[1], message: conflict[2] },
    ],
  });
  const noConflict: [DesiredCondition['status'], string, string] = [
    'False',
    'NoConflict',
    'this BootClient holds its IP',
  ];

  for (const { key, generation, ip } of losers) {
    const holder = bootClientKey(holders.get(ip)!.bc.metadata);
    statuses.set(
      key,
      acceptedWith(
        generation,
        ['False', 'Conflict', `not rendered: IP ${ip} is held by ${holder}`],
        [
          'True',
          'IpInUse',
          `IP ${ip} is held by BootClient ${holder}, which is older; this one takes over when that one is deleted or changes its IP`,
        ],
      ),
    );
  }

  const shards = new Map<string, Map<string, string>>();
  const shardBytes = new Map<string, number>();
  for (let i = 0; i < options.shardCount; i++) {
    shards.set(shardName(i), new Map());
    shardBytes.set(shardName(i), 0);
  }
  const configs = new Map<string, string>();
  // Holders in age order, so when a shard is full the older clients keep their place.
  for (const { bc, fileName, text } of holders.values()) {
    const key = bootClientKey(bc.metadata);
    const generation = bc.metadata.generation ?? 0;
    const shard = shardName(shardOf(fileName, options.shardCount));
    const dataKey = configMapKeyOf(fileName);
    const size = (shardBytes.get(shard) ?? 0) + dataKey.length + text.length;
    if (size > options.maxShardBytes) {
      const full = `ConfigMap ${shard} is full; raise the operator's --shards`;
      statuses.set(key, acceptedWith(generation, ['False', 'ShardFull', full], noConflict));
      continue;
    }
    shardBytes.set(shard, size);
    shards.get(shard)!.set(dataKey, text);
    configs.set(fileName, text);
    const where = `rendered as ${fileName} in ConfigMap ${shard}`;
    statuses.set(key, acceptedWith(generation, ['True', 'Rendered', where], noConflict));
  }
  return { configs, shards, statuses };
}
