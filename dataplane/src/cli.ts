/**
 * Command line of `rtftp`: the original RTFTP's arguments plus ours. Every flag can also
 * come from an environment variable (RTFTP_<FLAG>), as container users expect; a flag
 * given on the command line wins. Bad arguments are a CliError: one line, exit code 2.
 */
import { parseArgs } from 'node:util';
import { CidrSet, parseCidr } from '../../common/src/cidr.ts';
import { DEFAULT_SKIP_INTERFACES, parseListenSpec } from './tftp/listen-spec.ts';
import type { ListenSpec } from './tftp/listen-spec.ts';
import {
  BUILTIN_RESERVED,
  NbdTargetPolicy,
  type ReservedRange,
} from '../../common/src/nbd-target-policy.ts';
import { DEFAULT_OPEN_BUDGET } from './sources/budget.ts';
import { DEFAULT_STALL_LIMIT_S } from './health/health-monitor.ts';

export interface DataplaneOptions {
  root: string;
  configDir: string;
  listen: ListenSpec;
  port: number;
  idleTimeoutS: number;
  metricsPort: number;
  metricsListen: string;
  maxTransfers: number;
  maxTransfersPerClient: number;
  timeoutMs: number;
  retries: number;
  maxWindowBytes: number;
  gracePeriodS: number;
  diskWaitS: number;
  maxSessions: number;
  applianceMemoryMiB: number;
  tcgCacheMiB: number;
  workDir: string;
  applianceCacheDir: string;
  nbdKvm: 'auto' | 'on' | 'off';
  nbdLaunchTimeoutS: number;
  nbdReadTimeoutS: number;
  logLevel: string;
  /** Port of the probe-only HTTP listener (/healthz, /readyz on every address); 0: none. */
  probePort: number;
  /** Clients besides loopback that /status answers. */
  statusAllow: CidrSet;
  /** Answer no read request until the config dir holds a complete snapshot marker. */
  requireSnapshot: boolean;
  // Admission and retransmission (docs/admission.md)
  maxTransfersPerSubnet: number;
  maxPending: number;
  maxPendingPerSubnet: number;
  maxTransferMemoryMiB: number;
  maxTimeoutS: number;
  stallTimeoutS: number;
  /** --nbd-allow: NBD targets the dataplane may connect to; undefined = no rule (as before). */
  nbdAllow: NbdTargetPolicy | undefined;
  /** --nbd-deny: more ranges refused unless an allow entry inside them names them. */
  nbdDeny: ReservedRange[];
  // Budgets of one native disk open (sources/budget.ts) and the health bound (health/).
  openBudgetReads: number;
  openBudgetEntries: number;
  openBudgetMs: number;
  healthStallLimitS: number;
  /** --workers: threads serving clients, or 'auto' (workers/worker-count.ts). */
  workers: number | 'auto';
  // HTTP boot (docs/http-boot.md)
  /** --http-port: TCP port of the HTTP boot server; 0 = off. */
  httpPort: number;
  /** --http-listen: where it listens; the TFTP --listen spec when not given. */
  httpListen: ListenSpec;
}

export class CliError extends Error {
  readonly code = 'RTFTP_ERR_CLI';
}

interface FlagSpec {
  env: string;
  help: string;
  default?: string;
  kind: 'string' | 'int' | 'boolean';
  min?: number;
  max?: number;
}

const FLAGS: Record<string, FlagSpec> = {
  root: {
    env: 'RTFTP_ROOT',
    kind: 'string',
    help: 'root directory: <ip>/ per-client dirs, default/, <ip>.nbd configs',
  },
  'config-dir': {
    env: 'RTFTP_CONFIG_DIR',
    kind: 'string',
    help: 'where <ip>.nbd configs live (default: the root)',
  },
  listen: {
    env: 'RTFTP_LISTEN',
    kind: 'string',
    default: 'all',
    help:
      'where to serve, comma-separated: all, addresses, CIDRs (every local address inside), ' +
      'interface names (globs), !exclusions; each local address is bound separately',
  },
  port: {
    env: 'RTFTP_PORT',
    kind: 'int',
    default: '69',
    min: 0,
    max: 65535,
    help: 'UDP port (0 = any free port)',
  },
  'idle-timeout': {
    env: 'RTFTP_IDLE_TIMEOUT',
    kind: 'int',
    default: '300',
    min: 1,
    max: 604800,
    help: 'seconds without a transfer before an NBD disk is closed',
  },
  'metrics-port': {
    env: 'RTFTP_METRICS_PORT',
    kind: 'int',
    default: '9669',
    min: 0,
    max: 65535,
    help: 'HTTP port for /metrics, /healthz, /readyz, /status (loopback only) (0 = off)',
  },
  'metrics-listen': {
    env: 'RTFTP_METRICS_LISTEN',
    kind: 'string',
    default: '',
    help: 'address of the HTTP server (default: every address, IPv6 and IPv4)',
  },
  'max-transfers': {
    env: 'RTFTP_MAX_TRANSFERS',
    kind: 'int',
    default: '2000',
    min: 1,
    max: 1_000_000,
    help: 'concurrent transfers overall; more get ERROR 0 "server busy"',
  },
  'max-transfers-per-client': {
    env: 'RTFTP_MAX_TRANSFERS_PER_CLIENT',
    kind: 'int',
    default: '32',
    min: 1,
    max: 1_000_000,
    help: 'concurrent transfers per client address',
  },
  'timeout-ms': {
    env: 'RTFTP_TIMEOUT_MS',
    kind: 'int',
    default: '1000',
    min: 10,
    max: 255_000,
    help: 'retransmission timeout when the client negotiates none',
  },
  retries: {
    env: 'RTFTP_RETRIES',
    kind: 'int',
    default: '5',
    min: 0,
    max: 100,
    help: 'timeouts in a row before a transfer is abandoned',
  },
  'max-window-bytes': {
    env: 'RTFTP_MAX_WINDOW_BYTES',
    kind: 'int',
    default: String(1 << 20),
    min: 65536,
    max: 1 << 28,
    help: 'memory bound per transfer: windowsize × blksize is capped to this',
  },
  'grace-period': {
    env: 'RTFTP_GRACE_PERIOD',
    kind: 'int',
    default: '30',
    min: 0,
    max: 3600,
    help: 'seconds running transfers may finish after SIGTERM',
  },
  'disk-wait': {
    env: 'RTFTP_DISK_WAIT',
    kind: 'int',
    // iPXE abandons a request after ~18 s and EDK2 after ~28 s (measured in e2e/):
    // answering "disk not ready" before that lets the firmware retry cleanly.
    default: '15',
    min: 0,
    max: 3600,
    help: 'seconds a request waits for its NBD disk to connect',
  },
  'max-sessions': {
    env: 'RTFTP_MAX_SESSIONS',
    kind: 'int',
    default: '16',
    min: 1,
    max: 100_000,
    help: 'NBD disks connected at once (idle ones closed first)',
  },
  'appliance-memory': {
    env: 'RTFTP_APPLIANCE_MEMORY',
    kind: 'int',
    default: '256',
    min: 256,
    max: 65536,
    help: 'MiB of memory per libguestfs appliance',
  },
  'tcg-cache': {
    env: 'RTFTP_TCG_CACHE',
    kind: 'int',
    // QEMU's default is 1 GiB, of which an appliance touches ~180 MiB: 64 took qemu from
    // 542 to 378 MiB (bench/nbd-guestfs.ts).
    default: '64',
    min: 0,
    max: 4096,
    help: 'MiB of translation cache per appliance under TCG (0: QEMU default, 1 GiB)',
  },
  'work-dir': {
    env: 'RTFTP_WORK_DIR',
    kind: 'string',
    help: 'private scratch dir for appliances (default: $TMPDIR/rtftp-<pid>)',
  },
  'appliance-cache-dir': {
    env: 'RTFTP_APPLIANCE_CACHE_DIR',
    kind: 'string',
    help: 'where the libguestfs appliance is kept across restarts (default: <work-dir>/cache)',
  },
  'nbd-kvm': {
    env: 'RTFTP_NBD_KVM',
    kind: 'string',
    default: 'auto',
    help: 'KVM for appliances: auto (probe, fall back to TCG), on, off',
  },
  'nbd-launch-timeout': {
    env: 'RTFTP_NBD_LAUNCH_TIMEOUT',
    kind: 'int',
    default: '180',
    min: 5,
    max: 3600,
    help: 'seconds an appliance may take to launch',
  },
  'nbd-read-timeout': {
    env: 'RTFTP_NBD_READ_TIMEOUT',
    kind: 'int',
    default: '30',
    min: 1,
    max: 3600,
    help: 'seconds a disk read may make no progress before the disk is reconnected',
  },
  'log-level': {
    env: 'RTFTP_LOG_LEVEL',
    kind: 'string',
    default: 'info',
    help: 'trace, debug, info, warn, error',
  },
  // Listening and exposure (issue 14: day one on a bare-metal cluster).
  'listen-skip-interfaces': {
    env: 'RTFTP_LISTEN_SKIP_INTERFACES',
    kind: 'string',
    default: DEFAULT_SKIP_INTERFACES.join(','),
    help: 'interface name globs "all" leaves out ("" = none)',
  },
  'listen-rescan': {
    env: 'RTFTP_LISTEN_RESCAN',
    kind: 'int',
    default: '10',
    min: 1,
    max: 3600,
    help: 'seconds between scans of the interfaces for addresses that came or went',
  },
  'listen-buffer': {
    env: 'RTFTP_LISTEN_BUFFER',
    kind: 'int',
    default: '8192',
    min: 0,
    max: 1_048_576,
    help: "receive buffer of each listening socket, KiB (0 = the kernel's default); capped by net.core.rmem_max",
  },
  'probe-port': {
    env: 'RTFTP_PROBE_PORT',
    kind: 'int',
    default: '0',
    min: 0,
    max: 65535,
    help: 'HTTP port serving only /healthz and /readyz on every address, for the kubelet (0 = none)',
  },
  'status-allow': {
    env: 'RTFTP_STATUS_ALLOW',
    kind: 'string',
    default: '',
    help: 'CIDRs of clients /status also answers, besides loopback',
  },
  'require-snapshot': {
    env: 'RTFTP_REQUIRE_SNAPSHOT',
    kind: 'boolean',
    help: 'answer no request until <config-dir>/.rtftp-snapshot.json says complete',
  },
  // Admission and retransmission (docs/admission.md)
  'max-transfers-per-subnet': {
    env: 'RTFTP_MAX_TRANSFERS_PER_SUBNET',
    kind: 'int',
    // Half the overall default: one subnet can never take every slot.
    default: '1000',
    min: 1,
    max: 1_000_000,
    help: 'concurrent transfers per /24 (IPv4) or /64 (IPv6) of client addresses',
  },
  'max-pending': {
    env: 'RTFTP_MAX_PENDING',
    kind: 'int',
    default: '1024',
    min: 1,
    max: 1_000_000,
    help: "requests held before their client's first ACK (unproven, maybe spoofed); past it the oldest goes",
  },
  'max-pending-per-subnet': {
    env: 'RTFTP_MAX_PENDING_PER_SUBNET',
    kind: 'int',
    // Every machine of a full /24 with two requests in flight (a size probe and its read,
    // or a loader fetching two files at once).
    default: '512',
    min: 1,
    max: 1_000_000,
    help: "unproven requests held per /24 or /64; past it that subnet's oldest goes",
  },
  'max-transfer-memory': {
    env: 'RTFTP_MAX_TRANSFER_MEMORY',
    kind: 'int',
    default: '256',
    min: 1,
    max: 65536,
    help: 'MiB of buffers all transfers may hold; past it ERROR 0 "server busy"',
  },
  'max-timeout': {
    env: 'RTFTP_MAX_TIMEOUT',
    kind: 'int',
    default: '10',
    min: 1,
    max: 255,
    help: 'largest timeout option accepted (s; larger is not acknowledged), and the longest retransmission interval',
  },
  'stall-timeout': {
    env: 'RTFTP_STALL_TIMEOUT',
    kind: 'int',
    default: '30',
    min: 1,
    max: 3600,
    help: 'seconds a transfer may go without progress before it is abandoned',
  },
  // NBD target policy (docs/security.md, "Tenant and cluster boundaries").
  'nbd-allow': {
    env: 'RTFTP_NBD_ALLOW',
    kind: 'string',
    help: 'NBD targets allowed, comma-separated: CIDR[:PORT[-PORT]] or /socket/path; loopback and link-local only by an entry inside them (default: no rule)',
  },
  'nbd-deny': {
    env: 'RTFTP_NBD_DENY',
    kind: 'string',
    help: 'CIDRs refused like loopback unless an --nbd-allow entry inside them names them (e.g. the cluster CIDRs)',
  },
  'open-budget-reads': {
    env: 'RTFTP_OPEN_BUDGET_READS',
    kind: 'int',
    default: String(DEFAULT_OPEN_BUDGET.pageReads),
    min: 10,
    max: 100_000_000,
    help: 'metadata page reads one open of a file on a native NBD disk may cost',
  },
  'open-budget-entries': {
    env: 'RTFTP_OPEN_BUDGET_ENTRIES',
    kind: 'int',
    default: String(DEFAULT_OPEN_BUDGET.directoryEntries),
    min: 100,
    max: 100_000_000,
    help: 'directory entries one open on a native NBD disk may scan',
  },
  'open-budget-ms': {
    env: 'RTFTP_OPEN_BUDGET_MS',
    kind: 'int',
    default: String(DEFAULT_OPEN_BUDGET.wallMs),
    min: 100,
    max: 3_600_000,
    help: 'milliseconds one open on a native NBD disk may take',
  },
  'health-stall-limit': {
    env: 'RTFTP_HEALTH_STALL_LIMIT',
    kind: 'int',
    default: String(DEFAULT_STALL_LIMIT_S),
    min: 1,
    max: 3600,
    help: 'seconds the event loop or the thread pool may be stuck before /healthz fails',
  },
  // Worker mode (docs/performance.md)
  workers: {
    env: 'RTFTP_WORKERS',
    kind: 'string',
    default: '1',
    help: 'threads serving TFTP clients, each client always on the same one (1: everything on the main thread); auto: one per CPU, 1 on up to 2 CPUs',
  },
  // HTTP boot (docs/http-boot.md)
  'http-port': {
    env: 'RTFTP_HTTP_PORT',
    kind: 'int',
    default: '0',
    min: 0,
    max: 65535,
    help: 'TCP port of the HTTP boot server: the same per-client views over HTTP (0 = off)',
  },
  'http-listen': {
    env: 'RTFTP_HTTP_LISTEN',
    kind: 'string',
    help: 'where the HTTP boot server listens, in --listen syntax (default: the --listen spec)',
  },
  help: { env: '', kind: 'boolean', help: 'show this help' },
};

export function usage(): string {
  const lines = [
    'Usage: rtftp --root DIR [options]',
    '',
    'Options (each also from its environment variable):',
  ];
  for (const [name, f] of Object.entries(FLAGS)) {
    const def = f.default ? ` [default: ${f.default}]` : '';
    const env = f.env ? ` (${f.env})` : '';
    lines.push(`  --${name.padEnd(26)}${f.help}${def}${env}`);
  }
  return lines.join('\n');
}

function intValue(name: string, raw: string, f: FlagSpec): number {
  if (!/^[0-9]+$/.test(raw))
    throw new CliError(`--${name}: not a whole number: ${JSON.stringify(raw)}`);
  const n = Number(raw);
  if ((f.min !== undefined && n < f.min) || (f.max !== undefined && n > f.max)) {
    throw new CliError(`--${name}: ${n} is out of range ${f.min}..${f.max}`);
  }
  return n;
}

/** Parses argv + env; returns null when --help was asked. */
export function parseCli(argv: string[], env: NodeJS.ProcessEnv): DataplaneOptions | null {
  let values: Record<string, string | boolean | undefined>;
  try {
    const options = Object.fromEntries(
      Object.entries(FLAGS).map(([k, f]) => [
        k,
        { type: f.kind === 'boolean' ? ('boolean' as const) : ('string' as const) },
      ]),
    );
    values = parseArgs({ args: argv, options, strict: true, allowPositionals: false }).values;
  } catch (err) {
    throw new CliError((err as Error).message.split('\n')[0]!);
  }
  if (values.help) return null;
  const get = (name: string): string | undefined => {
    const v = values[name];
    if (typeof v === 'string') return v;
    const f = FLAGS[name]!;
    return (
      (f.env && env[f.env] !== undefined && env[f.env] !== '' ? env[f.env] : undefined) ?? f.default
    );
  };
  const int = (name: string) => intValue(name, get(name)!, FLAGS[name]!);
  const root = get('root');
  if (!root) throw new CliError('--root is required (or RTFTP_ROOT)');
  const listen = parseListenSpec(
    get('listen')!,
    splitList(get('listen-skip-interfaces')!),
    int('listen-rescan') * 1000,
  );
  if (!listen.ok) throw new CliError(`--listen: ${listen.error}`);
  listen.spec.receiveBufferBytes = int('listen-buffer') * 1024;
  let statusAllow: CidrSet;
  try {
    statusAllow = CidrSet.parse(splitList(get('status-allow')!));
  } catch (err) {
    throw new CliError(`--status-allow: ${(err as Error).message}`);
  }
  const flag = (name: string): boolean =>
    values[name] === true || ['1', 'true', 'yes'].includes(env[FLAGS[name]!.env] ?? '');
  const logLevel = get('log-level')!;
  if (!['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'].includes(logLevel)) {
    throw new CliError(`--log-level: unknown level ${JSON.stringify(logLevel)}`);
  }
  const nbdKvm = get('nbd-kvm')!;
  if (nbdKvm !== 'auto' && nbdKvm !== 'on' && nbdKvm !== 'off') {
    throw new CliError(`--nbd-kvm: must be auto, on or off, not ${JSON.stringify(nbdKvm)}`);
  }
  return {
    root,
    configDir: get('config-dir') ?? root,
    listen: listen.spec,
    port: int('port'),
    idleTimeoutS: int('idle-timeout'),
    metricsPort: int('metrics-port'),
    metricsListen: get('metrics-listen')!,
    maxTransfers: int('max-transfers'),
    maxTransfersPerClient: int('max-transfers-per-client'),
    timeoutMs: int('timeout-ms'),
    retries: int('retries'),
    maxWindowBytes: int('max-window-bytes'),
    gracePeriodS: int('grace-period'),
    diskWaitS: int('disk-wait'),
    maxSessions: int('max-sessions'),
    applianceMemoryMiB: int('appliance-memory'),
    tcgCacheMiB: int('tcg-cache'),
    workDir: get('work-dir') ?? '',
    applianceCacheDir: get('appliance-cache-dir') ?? '',
    nbdKvm,
    nbdLaunchTimeoutS: int('nbd-launch-timeout'),
    nbdReadTimeoutS: int('nbd-read-timeout'),
    logLevel,
    probePort: int('probe-port'),
    statusAllow,
    requireSnapshot: flag('require-snapshot'),
    maxTransfersPerSubnet: int('max-transfers-per-subnet'),
    maxPending: int('max-pending'),
    maxPendingPerSubnet: int('max-pending-per-subnet'),
    maxTransferMemoryMiB: int('max-transfer-memory'),
    maxTimeoutS: int('max-timeout'),
    stallTimeoutS: int('stall-timeout'),
    ...nbdTargetFlags(get('nbd-allow'), get('nbd-deny')),
    openBudgetReads: int('open-budget-reads'),
    openBudgetEntries: int('open-budget-entries'),
    openBudgetMs: int('open-budget-ms'),
    healthStallLimitS: int('health-stall-limit'),
    workers: workersFlag(get('workers')!),
    httpPort: int('http-port'),
    httpListen: httpListenFlag(get('http-listen'), listen.spec),
  };
}

function workersFlag(text: string): number | 'auto' {
  if (text === 'auto') return 'auto';
  return intValue('workers', text, {
    env: 'RTFTP_WORKERS',
    kind: 'int',
    help: '',
    min: 1,
    max: 256,
  });
}

/** --http-listen in --listen's syntax (same skip list and rescan period), or --listen's spec. */
function httpListenFlag(text: string | undefined, tftp: ListenSpec): ListenSpec {
  if (text === undefined) return tftp;
  const r = parseListenSpec(text, tftp.skipInterfaces, tftp.rescanMs);
  if (!r.ok) throw new CliError(`--http-listen: ${r.error}`);
  return r.spec;
}

function splitList(text: string): string[] {
  return text
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
}

function nbdTargetFlags(
  allow: string | undefined,
  deny: string | undefined,
): Pick<DataplaneOptions, 'nbdAllow' | 'nbdDeny'> {
  const nbdDeny = splitList(deny ?? '').map((text) => {
    const r = parseCidr(text);
    if (!r.ok) throw new CliError(`--nbd-deny: ${r.error}`);
    return { name: 'refused by --nbd-deny', cidr: r.cidr };
  });
  if (allow === undefined) return { nbdAllow: undefined, nbdDeny };
  const entries = splitList(allow);
  // An empty list is a mistake (an unset variable in a template), never "allow everything".
  if (entries.length === 0) throw new CliError('--nbd-allow: no entry given');
  try {
    return { nbdAllow: NbdTargetPolicy.parse(entries, [...BUILTIN_RESERVED, ...nbdDeny]), nbdDeny };
  } catch (err) {
    throw new CliError(`--nbd-allow: ${(err as Error).message}`);
  }
}
