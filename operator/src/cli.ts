/**
 * Command line of rtftp-operator. Two modes of the one image:
 *   rtftp-operator [controller] [flags]      the leader-elected controller
 *   rtftp-operator sync --dir DIR [flags]    the sidecar writing rendered configs as files
 * Every flag can also come from the environment (RTFTP_OPERATOR_<FLAG>); the namespace
 * defaults to POD_NAMESPACE (downward API). Bad arguments throw a UsageError: one line, exit 2.
 */
import { hostname } from 'node:os';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { parseCidr, type Cidr } from '../../common/src/cidr.ts';
import { DEFAULT_CLAIM_RETENTION_S } from './controller/claims.ts';
import { RENDERED_SELECTOR } from './controller/shards.ts';

export class UsageError extends Error {
  readonly code = 'RTFTP_ERR_USAGE';
}

interface Common {
  namespace: string;
  metricsPort: number;
  /** '' = every address, IPv6 and IPv4. */
  metricsListen: string;
  /** Port of a server with only /healthz and /readyz on every address; 0 = none. */
  probePort: number;
  watchTimeoutSeconds: number;
  logLevel: string;
}

export interface ControllerArgs extends Common {
  mode: 'controller';
  watchNamespace: string;
  shards: number;
  maxShardBytes: number;
  workers: number;
  leaseName: string;
  leaseDurationSeconds: number;
  renewDeadlineMs: number;
  retryPeriodMs: number;
  identity: string;
  /** The cluster's Service CIDRs: refused as NBD targets unless a BootNetwork names them. */
  serviceCidrs: Cidr[];
  /** The cluster's Pod CIDRs: likewise. */
  podCidrs: Cidr[];
  /** How long a claim with no BootClient left in its namespace is kept (0 = until released). */
  claimRetentionSeconds: number;
  /** How often the hostnames in tenants' NBD URLs are looked up again. */
  resolveIntervalSeconds: number;
}

export interface SyncArgs extends Common {
  mode: 'sync';
  selector: string;
  dir: string;
  /** The operator's --shards: only rtftp-configs-00 … -(N-1) are served. */
  shards: number;
  /** Where the last complete snapshot is kept on the node (a hostPath); '' = not kept. */
  snapshotDir: string;
  /** The node's name (downward API spec.nodeName); '' = no report to the operator. */
  nodeName: string;
  /** Holder identity of the report Lease: the pod name. */
  identity: string;
  /** How often the report Lease is renewed. */
  reportIntervalMs: number;
  /** A report not renewed for this long is stale: the operator takes the node as dead. */
  reportLeaseDurationSeconds: number;
}

const OPTIONS = {
  namespace: { type: 'string' },
  'watch-namespace': { type: 'string' },
  'all-namespaces': { type: 'boolean' },
  'metrics-port': { type: 'string' },
  'metrics-listen': { type: 'string' },
  'probe-port': { type: 'string' },
  'watch-timeout': { type: 'string' },
  'log-level': { type: 'string' },
  shards: { type: 'string' },
  'max-shard-bytes': { type: 'string' },
  workers: { type: 'string' },
  'lease-name': { type: 'string' },
  'lease-duration': { type: 'string' },
  'renew-deadline': { type: 'string' },
  'retry-period': { type: 'string' },
  identity: { type: 'string' },
  selector: { type: 'string' },
  dir: { type: 'string' },
  'service-cidrs': { type: 'string' },
  'pod-cidrs': { type: 'string' },
  'claim-retention': { type: 'string' },
  'resolve-interval': { type: 'string' },
  'snapshot-dir': { type: 'string' },
  'node-name': { type: 'string' },
  'report-interval': { type: 'string' },
  'report-lease-duration': { type: 'string' },
  help: { type: 'boolean' },
} as const;

export const USAGE = `usage: rtftp-operator [controller] [--namespace NS] [--watch-namespace NS | --all-namespaces] [--metrics-port N] [--metrics-listen ADDR] [--probe-port N]
         [--shards N] [--workers N] [--lease-name NAME] [--lease-duration S] [--renew-deadline S] [--retry-period S]
         [--identity ID] [--watch-timeout S] [--log-level LEVEL]
         [--service-cidrs CIDR,...] [--pod-cidrs CIDR,...] [--claim-retention S] [--resolve-interval S]
       rtftp-operator sync --dir DIR [--namespace NS] [--selector LABELS] [--shards N] [--metrics-port N] [--metrics-listen ADDR] [--probe-port N] [--watch-timeout S]
         [--snapshot-dir DIR] [--node-name NODE] [--identity POD] [--report-interval S] [--report-lease-duration S]`;

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

export function parseCli(
  argv: string[],
  env: NodeJS.ProcessEnv,
): ControllerArgs | SyncArgs | 'help' {
  let parsed;
  try {
    parsed = parseArgs({ args: argv, options: OPTIONS, allowPositionals: true, strict: true });
  } catch (err) {
    throw new UsageError((err as Error).message.split('\n')[0]!);
  }
  if (parsed.values.help) return 'help';
  const [mode = 'controller', ...extra] = parsed.positionals;
  if (mode !== 'controller' && mode !== 'sync')
    throw new UsageError(`unknown mode ${JSON.stringify(mode)}: use controller or sync`);
  if (extra.length) throw new UsageError(`unexpected argument ${JSON.stringify(extra[0])}`);
  const v = parsed.values as Record<string, string | undefined>;
  const get = (flag: string): string | undefined =>
    v[flag] ?? env[`RTFTP_OPERATOR_${flag.toUpperCase().replaceAll('-', '_')}`];
  const num = (flag: string, def: number, min: number, max: number, integer = true): number => {
    const raw = get(flag);
    if (raw === undefined || raw === '') return def;
    const n = Number(raw);
    if (!Number.isFinite(n) || n < min || n > max || (integer && !Number.isInteger(n)))
      throw new UsageError(
        `--${flag} must be ${integer ? 'an integer' : 'a number'} ${min}..${max}, got ${JSON.stringify(raw)}`,
      );
    return n;
  };
  const namespace = get('namespace') ?? env.POD_NAMESPACE ?? '';
  if (!namespace) throw new UsageError('no namespace: pass --namespace or set POD_NAMESPACE');
  const logLevel = get('log-level') ?? 'info';
  if (!LOG_LEVELS.includes(logLevel))
    throw new UsageError(`--log-level must be one of ${LOG_LEVELS.join(', ')}`);
  const common: Common = {
    namespace,
    metricsPort: num('metrics-port', mode === 'sync' ? 8081 : 8080, 0, 65535),
    metricsListen: get('metrics-listen') ?? '',
    probePort: num('probe-port', 0, 0, 65535),
    watchTimeoutSeconds: num('watch-timeout', 300, 1, 3600),
    logLevel,
  };
  const shards = num('shards', 16, 1, 256);
  if (mode === 'sync') {
    const dir = get('dir');
    if (!dir) throw new UsageError('sync needs --dir DIR (the directory the dataplane reads)');
    const snapshotDir = get('snapshot-dir') ?? '';
    if (snapshotDir && resolve(snapshotDir) === resolve(dir))
      throw new UsageError('--snapshot-dir must not be --dir: the dataplane reads --dir');
    const reportIntervalMs = num('report-interval', 10, 0.1, 3600, false) * 1000;
    const reportLeaseDurationSeconds = num('report-lease-duration', 40, 1, 3600);
    if (reportLeaseDurationSeconds * 1000 < 2 * reportIntervalMs)
      throw new UsageError(
        '--report-lease-duration must be at least twice --report-interval (one late renewal must not make a live node look dead)',
      );
    return {
      ...common,
      mode,
      dir,
      selector: get('selector') ?? RENDERED_SELECTOR,
      shards,
      snapshotDir,
      nodeName: get('node-name') || env.NODE_NAME || '',
      identity: get('identity') || env.POD_NAME || `${hostname()}-${process.pid}`,
      reportIntervalMs,
      reportLeaseDurationSeconds,
    };
  }
  const cidrs = (flag: string): Cidr[] =>
    (get(flag) ?? '')
      .split(',')
      .map((t) => t.trim())
      .filter(Boolean)
      .map((t) => {
        const r = parseCidr(t);
        if (!r.ok) throw new UsageError(`--${flag}: ${r.error}`);
        return r.cidr;
      });
  const allNamespaces =
    parsed.values['all-namespaces'] === true || env.RTFTP_OPERATOR_ALL_NAMESPACES === 'true';
  const leaseDurationSeconds = num('lease-duration', 15, 1, 3600);
  const renewDeadlineMs =
    num('renew-deadline', Math.min(10, leaseDurationSeconds * 0.66), 0.1, 3600, false) * 1000;
  if (renewDeadlineMs >= leaseDurationSeconds * 1000)
    throw new UsageError('--renew-deadline must be shorter than --lease-duration');
  return {
    ...common,
    mode,
    // BootClients of the operator's own namespace unless told otherwise ('' = all namespaces).
    watchNamespace: allNamespaces ? '' : (get('watch-namespace') ?? namespace),
    shards,
    maxShardBytes: num('max-shard-bytes', 900 * 1024, 1024, 1000 * 1024),
    workers: num('workers', 4, 1, 64),
    leaseName: get('lease-name') ?? 'rtftp-operator',
    leaseDurationSeconds,
    renewDeadlineMs,
    retryPeriodMs: num('retry-period', 2, 0.05, 600, false) * 1000,
    identity: get('identity') ?? env.POD_NAME ?? `${hostname()}-${process.pid}`,
    serviceCidrs: cidrs('service-cidrs'),
    podCidrs: cidrs('pod-cidrs'),
    claimRetentionSeconds: num('claim-retention', DEFAULT_CLAIM_RETENTION_S, 0, 10 * 365 * 86400),
    resolveIntervalSeconds: num('resolve-interval', 30, 1, 86400),
  };
}
