/**
 * The pure core of the operator: from the full set of BootClients, the full set of
 * `<ip>.nbd` configs (sharded into ConfigMaps) and the conditions every BootClient
 * should carry. Deterministic: the same set in any order gives the same result.
 *
 * With a TenancyInput (the controller always passes one) it also admits tenants'
 * BootClients through BootNetworks (common/src/bootnetwork-admission.ts) and settles IP
 * claims through the claim ledger (claims.ts), which it writes into the shards beside the
 * configs. A `spec.serial` is claimed like an IP, in the same ledger, among the BootClients
 * that hold their IP; a BootClient renders only when it holds both. Without one (unit tests, benchmarks) every namespace is trusted and the oldest
 * claimant of an IP wins, as before BootNetworks existed.
 */
import {
  bootClientKey,
  validateBootClientSpec,
  type BootClient,
  type BootClientValidation,
} from '../../../common/src/bootclient.ts';
import {
  admitBootClient,
  type AdmissionContext,
} from '../../../common/src/bootnetwork-admission.ts';
import { configNameOf, formatProblems, renderNbdConfig } from '../../../common/src/nbd-config.ts';
import {
  claimKeyOf,
  formatClaim,
  isSerialClaimId,
  serialClaimId,
  settleClaims,
  type Claim,
  type Claimant,
} from './claims.ts';
import type { Placement } from './ready.ts';
import { configMapKeyOf, shardOf, shardName } from './shards.ts';

/** A condition without its transition time: what render decides, before merging with history. */
export interface DesiredCondition {
  /** Ready is not render's: the controller adds it from the sync sidecars' reports (ready.ts). */
  type: 'Accepted' | 'Rendered' | 'Conflict' | 'Ready';
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

/** Who may claim what: BootNetwork admission and the claim ledger. */
export interface TenancyInput {
  /** True for a namespace whose BootClients need no BootNetwork (the operator's own). */
  trusted(namespace: string): boolean;
  admission: AdmissionContext;
  /** The claim ledger as stored (IP or serialClaimId → claim). */
  claims: ReadonlyMap<string, Claim>;
  /** Milliseconds since the epoch: when vacant claims started, and expire. */
  now: number;
  /** How long a vacant claim is kept; 0 = until the admin releases it. */
  claimRetentionMs: number;
}

export interface RenderResult {
  /** fileName → file text, for every config that made it into a shard. */
  configs: Map<string, string>;
  /** ConfigMap name → (data key → text); every shard present, empty ones too. */
  shards: Map<string, Map<string, string>>;
  /** BootClient key (`namespace/name`) → its desired status. */
  statuses: Map<string, DesiredStatus>;
  /** BootClient key → where its config went, for every client that is Rendered. */
  placements: Map<string, Placement>;
  /** The claim ledger to store (empty without a TenancyInput). */
  claims: Map<string, Claim>;
  /** Claim ids (IPs, serialClaimIds) whose vacant claim ran out its retention in this render. */
  expiredClaims: string[];
  /** When the next vacant claim expires: render again then. */
  requeueAfterMs: number | undefined;
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

type Status = DesiredCondition['status'];

function notRendered(
  generation: number,
  reason: 'Invalid' | 'NotPermitted',
  message: string,
): DesiredStatus {
  return {
    observedGeneration: generation,
    conditions: [
      { type: 'Accepted', status: 'False', reason, message },
      {
        type: 'Rendered',
        status: 'False',
        reason,
        message: reason === 'Invalid' ? 'spec is invalid' : 'not permitted',
      },
    ],
  };
}

function acceptedWith(
  generation: number,
  acceptedMessage: string,
  rendered: [Status, string, string],
  conflict: [Status, string, string],
): DesiredStatus {
  return {
    observedGeneration: generation,
    conditions: [
      acceptedMessage === accepted.message ? accepted : { ...accepted, message: acceptedMessage },
      { type: 'Rendered', status: rendered[0], reason: rendered[1], message: rendered[2] },
      { type: 'Conflict', status: conflict[0], reason: conflict[1], message: conflict[2] },
    ],
  };
}

const noConflict: [Status, string, string] = [
  'False',
  'NoConflict',
  'this BootClient holds its IP',
];

interface Candidate extends Claimant {
  bc: BootClient;
  generation: number;
  fileName: string;
  text: string;
  acceptedMessage: string;
  /** Canonical (lower-case) serial, or undefined. */
  serial: string | undefined;
}

/** The Conflict status of a BootClient that lost its IP or its serial to `holder` (null: another namespace). */
function lostStatus(
  c: Candidate,
  kind: 'IP' | 'serial',
  value: string,
  holder: Candidate | null,
): DesiredStatus {
  const what = `${kind} ${value}`;
  // Never an object of another namespace in a status: that one is only "another namespace".
  const [rendered, reason, message] = holder
    ? [
        `not rendered: ${what} is held by ${holder.key}`,
        kind === 'IP' ? 'IpInUse' : 'SerialInUse',
        `${what} is held by BootClient ${holder.key}, which is older; this one takes over when that one is deleted or changes its ${kind}`,
      ]
    : [
        `not rendered: ${what} is claimed by another namespace`,
        'ClaimedByAnotherNamespace',
        `${what} is claimed by another namespace; it is never taken over from there: the cluster admin can release the claim (docs/operator.md)`,
      ];
  return acceptedWith(
    c.generation,
    c.acceptedMessage,
    ['False', 'Conflict', rendered],
    ['True', reason, message],
  );
}

export function render(
  bootClients: Iterable<BootClient>,
  options: RenderOptions,
  validate: SpecValidator = validateFresh,
  tenancy?: TenancyInput,
): RenderResult {
  const statuses = new Map<string, DesiredStatus>();
  const live = [...bootClients].filter((bc) => !bc.metadata.deletionTimestamp).sort(olderFirst);
  const candidates: Candidate[] = [];

  for (const bc of live) {
    const key = bootClientKey(bc.metadata);
    const namespace = bc.metadata.namespace;
    const generation = bc.metadata.generation ?? 0;
    const v = validate(bc);
    if (!v.ok) {
      statuses.set(key, notRendered(generation, 'Invalid', formatProblems(v.problems)));
      continue;
    }
    let text = v.text;
    let acceptedMessage = accepted.message;
    if (tenancy && !tenancy.trusted(namespace)) {
      const a = admitBootClient(tenancy.admission, {
        namespace,
        ip: v.clientIp,
        endpoint: v.endpoint,
      });
      if (!a.ok) {
        statuses.set(key, notRendered(generation, 'NotPermitted', a.message));
        continue;
      }
      // The allow-list it was admitted under goes into its config: the dataplane checks
      // the target against it again at connect time, whatever a hostname resolves to then.
      text = renderNbdConfig({ ...v.input, nbdAllow: a.nbdAllow });
      acceptedMessage = `spec is valid and admitted by BootNetwork ${a.networks.join(', ')}`;
    }
    candidates.push({
      key,
      namespace,
      ip: v.clientIp,
      bc,
      generation,
      fileName: v.fileName,
      text,
      acceptedMessage,
      serial: v.input.serial,
    });
  }

  const ledgerOf = (serials: boolean) =>
    new Map([...(tenancy?.claims ?? [])].filter(([id]) => isSerialClaimId(id) === serials));
  const settle = (cs: Candidate[], serials: boolean, idOf?: (c: Candidate) => string) =>
    tenancy
      ? settleClaims(cs, ledgerOf(serials), tenancy.now, tenancy.claimRetentionMs, idOf)
      : settleClaims(cs, new Map(), 0, 0, idOf);
  const settled = settle(candidates, false);
  // A serial is claimed only by BootClients that hold their IP: one that cannot render
  // anyway never keeps a serial from one that can.
  const serialIdOf = (c: Candidate) => serialClaimId(c.serial!);
  const settledSerials = settle(
    candidates.filter((c) => c.serial !== undefined && settled.holders.get(c.ip) === c),
    true,
    serialIdOf,
  );
  const holdsAll = (c: Candidate) =>
    settled.holders.get(c.ip) === c &&
    (c.serial === undefined || settledSerials.holders.get(serialIdOf(c)) === c);

  for (const c of candidates) {
    const lostIp = settled.losers.get(c.key);
    const lostSerial = settledSerials.losers.get(c.key);
    if (lostIp) statuses.set(c.key, lostStatus(c, 'IP', c.ip, lostIp.holder));
    else if (lostSerial) statuses.set(c.key, lostStatus(c, 'serial', c.serial!, lostSerial.holder));
  }

  const shards = new Map<string, Map<string, string>>();
  const shardBytes = new Map<string, number>();
  for (let i = 0; i < options.shardCount; i++) {
    shards.set(shardName(i), new Map());
    shardBytes.set(shardName(i), 0);
  }
  const shardFor = (ip: string) => shardName(shardOf(configNameOf(ip), options.shardCount));
  const claims = tenancy
    ? new Map([...settled.ledger, ...settledSerials.ledger])
    : new Map<string, Claim>();
  // Claims first: they are small, and losing one would let another namespace take an IP.
  for (const [id, claim] of [...claims].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    const shard = shardFor(id);
    const key = claimKeyOf(id);
    const value = formatClaim(claim);
    shards.get(shard)!.set(key, value);
    shardBytes.set(shard, shardBytes.get(shard)! + key.length + value.length);
  }
  const configs = new Map<string, string>();
  const placements = new Map<string, Placement>();
  // Holders in age order, so when a shard is full the older clients keep their place.
  for (const c of candidates) {
    if (!holdsAll(c)) continue;
    const shard = shardFor(c.ip);
    const dataKey = configMapKeyOf(c.fileName);
    const size = (shardBytes.get(shard) ?? 0) + dataKey.length + c.text.length;
    if (size > options.maxShardBytes) {
      const full = `ConfigMap ${shard} is full; raise the operator's --shards`;
      statuses.set(
        c.key,
        acceptedWith(c.generation, c.acceptedMessage, ['False', 'ShardFull', full], noConflict),
      );
      continue;
    }
    shardBytes.set(shard, size);
    shards.get(shard)!.set(dataKey, c.text);
    configs.set(c.fileName, c.text);
    placements.set(c.key, { shard, key: dataKey, text: c.text });
    const where = `rendered as ${c.fileName} in ConfigMap ${shard}`;
    statuses.set(
      c.key,
      acceptedWith(c.generation, c.acceptedMessage, ['True', 'Rendered', where], noConflict),
    );
  }
  return {
    configs,
    shards,
    statuses,
    placements,
    claims,
    expiredClaims: tenancy ? [...settled.expired, ...settledSerials.expired] : [],
    requeueAfterMs: tenancy
      ? minDefined(settled.nextExpiryMs, settledSerials.nextExpiryMs)
      : undefined,
  };
}

function minDefined(a: number | undefined, b: number | undefined): number | undefined {
  return a === undefined ? b : b === undefined ? a : Math.min(a, b);
}
