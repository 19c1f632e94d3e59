/**
 * The BootClient resource as the operator reads it, and its mapping onto the `<ip>.nbd`
 * config the dataplane reads. The mapping goes through common/src/nbd-config.ts (the one
 * module for that format), so what the operator renders is what the dataplane parses.
 */
import {
  canonicalIp,
  configNameOf,
  renderNbdConfig,
  validateNbdConfig,
  type ConfigProblem,
  type NbdBackend,
  type NbdConfigInput,
  type NbdEndpoint,
} from './nbd-config.ts';
import { isRecord } from './json-shape.ts';

export const BOOTCLIENT_GROUP = 'rtftp.io';
export const BOOTCLIENT_VERSION = 'v1alpha1';
export const BOOTCLIENT_API_VERSION = `${BOOTCLIENT_GROUP}/${BOOTCLIENT_VERSION}`;
export const BOOTCLIENT_KIND = 'BootClient';
export const BOOTCLIENT_PLURAL = 'bootclients';

export interface BootClientSpec {
  ip: string;
  nbd: { url: string };
  mounts: { partition: number; mountpoint: string }[];
  tftpRoot: string;
  prefetch?: boolean;
  idleTimeout?: number;
  backend?: NbdBackend;
  /** A Raspberry Pi's serial number, 8 hex digits in any case (rendered lower-case). */
  serial?: string;
}

/** The metav1.Condition shape. */
export interface Condition {
  type: string;
  status: 'True' | 'False' | 'Unknown';
  observedGeneration: number;
  lastTransitionTime: string;
  reason: string;
  message: string;
}

export interface BootClientStatus {
  observedGeneration?: number;
  conditions?: Condition[];
}

/** The subset of ObjectMeta the operator depends on. */
export interface BootClientMeta {
  name: string;
  namespace: string;
  uid?: string;
  generation?: number;
  resourceVersion?: string;
  creationTimestamp?: string;
  deletionTimestamp?: string;
}

export interface BootClient {
  apiVersion?: string;
  kind?: string;
  metadata: BootClientMeta;
  /** Unknown until validated: the API server checks the schema, but old objects may predate it. */
  spec: unknown;
  status?: BootClientStatus;
}

export type BootClientValidation =
  | {
      ok: true;
      clientIp: string;
      fileName: string;
      text: string;
      /** Where the disk is, for admission. */
      endpoint: NbdEndpoint;
      /** What `text` was rendered from, to render it again with an `nbdAllow`. */
      input: NbdConfigInput;
    }
  | { ok: false; problems: ConfigProblem[] };

/** Maps a spec onto the config input, field for field; no validation. */
export function bootClientSpecToNbdInput(spec: BootClientSpec): NbdConfigInput {
  return {
    url: spec.nbd.url,
    mounts: spec.mounts,
    tftpRoot: spec.tftpRoot,
    backend: spec.backend,
    prefetch: spec.prefetch,
    idleTimeout: spec.idleTimeout,
    serial: spec.serial,
  };
}

/**
 * Validates a spec and renders its config text. Everything the API server's schema
 * cannot check (URL grammar, mount order, canonical IP) is checked here, by rendering and
 * then parsing back through the dataplane's own validator: a spec is accepted only when
 * the dataplane would accept the file.
 */
export function validateBootClientSpec(spec: unknown): BootClientValidation {
  if (!isRecord(spec)) return { ok: false, problems: [{ field: 'spec', message: 'missing' }] };
  const problems: ConfigProblem[] = [];
  const ip = typeof spec.ip === 'string' ? canonicalIp(spec.ip) : null;
  if (ip === null) {
    problems.push({ field: 'spec.ip', message: 'must be an IPv4 or IPv6 address' });
  } else if (ip !== spec.ip) {
    // The dataplane looks configs up by the canonical form only; a different spelling
    // would render a file nobody ever reads.
    problems.push({ field: 'spec.ip', message: `write it in canonical form: ${ip}` });
  }
  const nbd = isRecord(spec.nbd) ? spec.nbd : {};
  const doc: Record<string, unknown> = {
    url: nbd.url,
    mounts: spec.mounts,
    tftp_root: spec.tftpRoot,
  };
  if (spec.backend !== undefined) doc.backend = spec.backend;
  if (spec.prefetch !== undefined) doc.prefetch = spec.prefetch;
  if (spec.idleTimeout !== undefined) doc.idle_timeout = spec.idleTimeout;
  if (spec.serial !== undefined) doc.serial = spec.serial;
  const parsed = validateNbdConfig(doc);
  if (!parsed.ok) problems.push(...parsed.problems.map(toSpecField));
  if (problems.length || !parsed.ok || ip === null) return { ok: false, problems };
  const c = parsed.config;
  const input: NbdConfigInput = {
    url: c.url,
    mounts: c.mounts,
    tftpRoot: c.tftpRoot,
    backend: c.backend,
    prefetch: c.prefetch,
    idleTimeout: c.idleTimeout,
    serial: c.serial,
  };
  const text = renderNbdConfig(input);
  return {
    ok: true,
    clientIp: ip,
    fileName: configNameOf(ip),
    text,
    endpoint: c.endpoint,
    input,
  };
}

const FIELD_NAMES: Record<string, string> = {
  url: 'spec.nbd.url',
  tftp_root: 'spec.tftpRoot',
  idle_timeout: 'spec.idleTimeout',
};

/** Names a problem by the BootClient field the user wrote, not the `.nbd` key. */
function toSpecField(p: ConfigProblem): ConfigProblem {
  const head = p.field.split(/[.[]/)[0] ?? '';
  const mapped = FIELD_NAMES[head];
  if (mapped) return { ...p, field: mapped + p.field.slice(head.length) };
  return { ...p, field: p.field ? `spec.${p.field}` : 'spec' };
}

/** `namespace/name`: the key of a BootClient in the work queue and in statuses. */
export function bootClientKey(meta: { namespace?: string; name?: string }): string {
  return `${meta.namespace ?? ''}/${meta.name ?? ''}`;
}
