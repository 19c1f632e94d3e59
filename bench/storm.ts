/**
 * The boot storm: the hour after a power cut, when every machine of the room asks for its
 * kernel and initrd at once, each from its own disk.
 *
 * N clients (default 500), each from its own loopback address, each with its own NBD disk
 * (one nbdkit serving hard links of a few disk images, read natively), all at once, each
 * fetching an 8 MiB kernel and then a 32 MiB initrd, as firmware does (--fetch parallel:
 * both files at once), in the EDK2-like profile (blksize 1468, windowsize 4), the iPXE-like
 * one (tsize probe, then blksize 1432 lock-step) and over HTTP/1.1 (one keep-alive
 * connection per client, rtftp's --http-port). The baseline, in the same run: the same
 * payloads from local dirs through tftp-hpa and dnsmasq (tftp-max raised so it can take
 * part) over TFTP, and through nginx (sendfile, one process) over HTTP; a peer that does not
 * speak a profile's protocol has no row in it. Each server starts afresh for each profile
 * (its peak RSS and CPU are that storm's); rtftp's disks are connected before the clients
 * start (the boot server was up; --cold: not waited for). Everything runs in a network
 * namespace of its own (dnsmasq always binds port 69).
 *
 *   node --import tsx bench/storm.ts [--clients 500] [--profiles edk2,ipxe,http]
 *     [--servers rtftp,tftp-hpa,dnsmasq,nginx[,node-floor,node-floor-shared]] [--workers 1,2]
 *     [--kernel-mib 8] [--initrd-mib 32]
 *     [--load-procs 2] [--variants 2] [--cold] [--cpu-prof DIR] [--rtftp-args="..."]
 *     [--fetch sequential|parallel] [--server-log DIR]   (rtftp's log lines of each storm, one file per storm, to diagnose
 *                           a failed client: add --rtftp-args="--log-level debug")
 *
 * Prints a markdown table (docs/performance.md explains each column) and the issue's targets.
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { makeTempDir } from '../dataplane/test/helpers/fixtures.ts';
import { createIsolatedNamespace } from '../dataplane/test/helpers/netns.ts';
import { STORM_FILES, createStormFleet } from '../dataplane/test/helpers/storm-fleet.ts';
import type {
  StormClient,
  StormFileName,
  StormFleet,
} from '../dataplane/test/helpers/storm-fleet.ts';
import type { StormProfile } from '../dataplane/test/helpers/storm-client.ts';
import { targetOf } from '../dataplane/test/helpers/http-boot.ts';
import {
  RTFTP_BIN,
  metricValue,
  peakRssKb,
  startDnsmasqTftp,
  startInTftpd,
  startPeer,
  startRtftp,
} from '../dataplane/test/helpers/tftp-servers.ts';
import type { LogLine } from '../dataplane/test/helpers/tftp-servers.ts';
import { listenDropsFrom } from '../dataplane/src/tftp/listen-drops.ts';
import type { HttpLoadSpec, HttpRunResult } from './lib/http-load-client.ts';
import { nginxMissingReason, startNginx } from './lib/nginx.ts';
import { ProcessTreeCpu } from './lib/process-tree-cpu.ts';
import {
  buildLoadGenerator,
  deal,
  describeHttpLoadGenerator,
  describeLoadGenerator,
  prepareLoad,
} from './lib/storm-load-runner.ts';
import type { LoadGenerator } from './lib/storm-load-runner.ts';
import type { StormLoadSpec } from './lib/storm-load.ts';
import { formatStormTable, formatTargets, summarize } from './lib/storm-report.ts';
import type { StormFigures } from './lib/storm-report.ts';

const { values: args } = parseArgs({
  options: {
    clients: { type: 'string', default: '500' },
    profiles: { type: 'string', default: 'edk2,ipxe,http' },
    servers: { type: 'string', default: 'rtftp,tftp-hpa,dnsmasq,nginx' },
    workers: { type: 'string', default: '1,2' },
    'kernel-mib': { type: 'string', default: '8' },
    'initrd-mib': { type: 'string', default: '32' },
    'load-procs': { type: 'string', default: '2' },
    variants: { type: 'string', default: '2' },
    cold: { type: 'boolean', default: false },
    'cpu-prof': { type: 'string' },
    'server-log': { type: 'string' },
    fetch: { type: 'string', default: 'sequential' },
    perf: { type: 'string' },
    'rtftp-args': { type: 'string', default: '' },
    'retransmit-ms': { type: 'string', default: '1000' },
    load: { type: 'string', default: 'c' },
  },
});

const CLIENTS = Number(args.clients);
if (args.fetch !== 'sequential' && args.fetch !== 'parallel')
  throw new Error(`--fetch is sequential or parallel, not ${args.fetch}`);
const LOAD_PROCS = Math.max(1, Number(args['load-procs']));
const HOST = '127.0.0.1';
/** Each server's port, by the protocol it serves the storm over (none: no row). */
const PORTS = {
  tftp: {
    rtftp: 6901,
    'tftp-hpa': 6902,
    dnsmasq: 69,
    'node-floor': 6903,
    'node-floor-shared': 6904,
  },
  http: { rtftp: 6969, nginx: 6970 },
} as const;
type Protocol = keyof typeof PORTS;
type ServerKind = 'rtftp' | 'tftp-hpa' | 'dnsmasq' | 'nginx' | 'node-floor' | 'node-floor-shared';
const SERVER_KINDS: readonly string[] = [
  'rtftp',
  'tftp-hpa',
  'dnsmasq',
  'nginx',
  'node-floor',
  'node-floor-shared',
];
const HTTP_METRICS_PORT = 9701;
const MiB = 1024 * 1024;
/** What one HTTP transfer reserves of rtftp's --max-transfer-memory: two 256 KiB buffers. */
const HTTP_TRANSFER_MIB = 0.5;
/** In worker mode, also the buffer its reads cross the thread boundary in: 768 KiB. */
const HTTP_WORKER_TRANSFER_MIB = 0.75;
/** --max-transfer-memory's default (MiB). */
const DEFAULT_TRANSFER_MEMORY_MIB = 256;
/** What Node's dgram alone costs per block (--servers node-floor): bench/lib/node-floor-tftpd.ts. */
const NODE_FLOOR = fileURLToPath(new URL('./lib/node-floor-tftpd.ts', import.meta.url));

interface ServerPlan {
  kind: ServerKind;
  label: string;
  workers?: number;
}

function protocolOf(profile: string): Protocol {
  return profile === 'http' ? 'http' : 'tftp';
}

function portOf(kind: ServerKind, protocol: Protocol): number {
  const ports: Partial<Record<ServerKind, number>> = PORTS[protocol];
  const port = ports[kind];
  if (port === undefined) throw new Error(`${kind} serves no ${protocol}`);
  return port;
}

/** The rows of one profile: each server of --servers that speaks its protocol. */
function plans(protocol: Protocol): ServerPlan[] {
  const out: ServerPlan[] = [];
  for (const s of args.servers.split(',')) {
    if (!SERVER_KINDS.includes(s)) throw new Error(`unknown server ${s}`);
    if (!(s in PORTS[protocol])) continue;
    if (s === 'rtftp' && args.workers === '') out.push({ kind: 'rtftp', label: 'rtftp' });
    else if (s === 'rtftp') {
      for (const w of args.workers.split(',').map(Number))
        out.push({ kind: 'rtftp', label: `rtftp (${w} worker${w === 1 ? '' : 's'})`, workers: w });
    } else if (s === 'tftp-hpa') out.push({ kind: 'tftp-hpa', label: 'tftp-hpa' });
    else if (s === 'dnsmasq')
      out.push({ kind: 'dnsmasq', label: `dnsmasq (tftp-max ${dnsmasqTftpMax()})` });
    else if (s === 'node-floor') out.push({ kind: 'node-floor', label: "Node's dgram floor" });
    else if (s === 'node-floor-shared')
      out.push({ kind: 'node-floor-shared', label: "Node's dgram floor, one socket" });
    else out.push({ kind: 'nginx', label: 'nginx (1 process, sendfile)' });
  }
  return out;
}

/** HTTP transfers the storm holds at once: every client's files, or one each (sequential). */
function httpTransfersAtOnce(): number {
  return CLIENTS * (args.fetch === 'sequential' ? 1 : STORM_FILES.length);
}

/**
 * rtftp's --max-transfer-memory for the HTTP storm: its default unless every transfer at
 * once needs more (then raised, and the conditions line says so), as dnsmasq's tftp-max is.
 */
function httpTransferMemoryMiB(workers = 1): number | undefined {
  const each = workers > 1 ? HTTP_WORKER_TRANSFER_MIB : HTTP_TRANSFER_MIB;
  const needed = Math.ceil(httpTransfersAtOnce() * each);
  return needed > DEFAULT_TRANSFER_MEMORY_MIB ? needed + 16 : undefined;
}

/** Every transfer of the storm at once, and some room. */
function dnsmasqTftpMax(): number {
  return 2 * CLIENTS + 50;
}

/** Does this rtftp serve HTTP boot yet (issue 15)? */
function httpMissingReason(): string | undefined {
  const help = spawnSync(process.execPath, [RTFTP_BIN, '--help'], { encoding: 'utf8' }).stdout;
  return help.includes('--http-port')
    ? undefined
    : 'rtftp has no --http-port yet (HTTP boot, issue 15): the HTTP profile is skipped';
}

function curlInNetns(netns: string, url: string): string {
  const r = spawnSync('ip', ['netns', 'exec', netns, 'curl', '-s', '--max-time', '5', url], {
    encoding: 'utf8',
  });
  return r.stdout ?? '';
}

/** What a storm needs of a server it started: its PID, rtftp's log lines, a stop. */
interface StormServer {
  pid: number;
  logs?: LogLine[];
  stop(): Promise<void>;
}

async function startServer(
  plan: ServerPlan,
  fleet: StormFleet,
  netns: string,
  profile: string,
  dir: string,
): Promise<StormServer> {
  const protocol = protocolOf(profile);
  const port = portOf(plan.kind, protocol);
  if (plan.kind === 'nginx')
    return startNginx({
      dir: join(dir, `nginx-${profile}`),
      root: fleet.peerRoot,
      address: HOST,
      port,
      netns,
      connections: httpTransfersAtOnce() + 64,
    });
  if (plan.kind === 'tftp-hpa')
    return startInTftpd({ root: fleet.peerRoot, address: HOST, port, netns });
  // One directory per storm, and Node's own file names: every thread (the server, worker
  // threads, tsx's loader thread) writes its own profile; one fixed name let the last
  // thread to exit overwrite the server's.
  const prof = args['cpu-prof'];
  const nodeArgs = prof
    ? [
        '--cpu-prof',
        `--cpu-prof-dir=${join(prof, `storm-${profile}-${plan.kind === 'rtftp' ? `w${plan.workers ?? 'd'}` : plan.kind}`)}`,
      ]
    : [];
  // perf resolves JIT-compiled JavaScript through /tmp/perf-<pid>.map.
  if (args.perf) nodeArgs.push('--perf-basic-prof-only-functions');
  if (plan.kind === 'node-floor' || plan.kind === 'node-floor-shared') {
    const argv = [
      process.execPath,
      ...nodeArgs,
      '--import',
      'tsx',
      NODE_FLOOR,
      fleet.peerRoot,
      HOST,
    ];
    argv.push(String(port), ...(plan.kind === 'node-floor-shared' ? ['shared'] : []));
    return startPeer(plan.kind, argv, { root: fleet.peerRoot, address: HOST, port, netns });
  }
  if (plan.kind === 'dnsmasq')
    return startDnsmasqTftp({
      root: fleet.peerRoot,
      address: HOST,
      port,
      netns,
      tftpMax: dnsmasqTftpMax(),
    });
  const memory = httpTransferMemoryMiB(plan.workers);
  const http =
    protocol === 'http'
      ? [
          '--http-port',
          String(port),
          ...(memory !== undefined ? ['--max-transfer-memory', String(memory)] : []),
        ]
      : [];
  const server = await startRtftp({
    root: fleet.rtftpRoot,
    listen: [HOST],
    // Over HTTP its TFTP port is idle; over TFTP it is the one measured.
    port: PORTS.tftp.rtftp,
    netns,
    nodeArgs,
    args: [
      '--grace-period',
      '1',
      '--metrics-port',
      String(HTTP_METRICS_PORT),
      '--metrics-listen',
      HOST,
      '--max-sessions',
      String(CLIENTS + 16),
      ...(plan.workers !== undefined ? ['--workers', String(plan.workers)] : []),
      ...http,
      ...args['rtftp-args'].split(' ').filter(Boolean),
    ],
  });
  if (protocol === 'http')
    await server.waitForLog((l) => l.msg === 'HTTP boot server listening', 30_000);
  return server;
}

/**
 * Datagrams the kernel dropped at the server's listening socket (its receive buffer was
 * full), from /proc/net/udp in the storm's namespace: the dataplane's own reader
 * (listen-drops.ts). Every server here binds HOST itself.
 */
function listenerDrops(netns: string, port: number): number | undefined {
  const r = spawnSync('ip', ['netns', 'exec', netns, 'cat', '/proc/net/udp', '/proc/net/udp6'], {
    encoding: 'utf8',
  });
  return r.status === 0 ? listenDropsFrom(r.stdout, port, [HOST]) : undefined;
}

/**
 * TCP connections the kernel dropped at a listening socket in the storm's namespace so far
 * (TcpExt ListenDrops: accept queue full, or no memory); only one server runs at a time.
 */
function tcpListenDrops(netns: string): number | undefined {
  const r = spawnSync('ip', ['netns', 'exec', netns, 'cat', '/proc/net/netstat'], {
    encoding: 'utf8',
  });
  const [names, values] = r.stdout.split('\n').filter((l) => l.startsWith('TcpExt:'));
  const i = names?.split(' ').indexOf('ListenDrops') ?? -1;
  const value = i > 0 ? Number(values?.split(' ')[i]) : NaN;
  return Number.isFinite(value) ? value : undefined;
}

const NBD_READ_METRIC = 'rtftp_nbd_read_bytes_total{backend="native"}';

/** rtftp's /metrics, as the benchmark's netns sees it. */
function rtftpMetrics(netns: string): string {
  return curlInNetns(netns, `http://${HOST}:${HTTP_METRICS_PORT}/metrics`);
}

/** Waits until every client's disk is connected (the boot server was up before the storm). */
async function waitForDisks(netns: string, timeoutMs: number): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  let connected = 0;
  while (Date.now() < deadline) {
    const text = rtftpMetrics(netns);
    connected = metricValue(text, 'rtftp_nbd_sessions_active{backend="native"}') ?? 0;
    if (connected >= CLIENTS) return connected;
    await new Promise((r) => setTimeout(r, 500));
  }
  return connected;
}

/**
 * The name client `c` asks for: rtftp tells clients apart by source address (TFTP and HTTP
 * alike), the peers serve one root to all.
 */
function nameFor(fleet: StormFleet, plan: ServerPlan, c: StormClient, f: StormFileName): string {
  return plan.kind === 'rtftp' ? fleet.rtftpPath(c, f) : fleet.peerPath(c, f);
}

/** One spec per load-generator process, each with its share of the clients. */
function loadSpecs(
  fleet: StormFleet,
  profile: StormProfile | 'http',
  plan: ServerPlan,
): (StormLoadSpec | HttpLoadSpec)[] {
  const shares = deal(fleet.clients, LOAD_PROCS);
  const common = {
    host: HOST,
    port: portOf(plan.kind, protocolOf(profile)),
    sequential: args.fetch === 'sequential',
  };
  if (profile === 'http')
    return shares.map((share) => ({
      ...common,
      profile,
      // Firmware gives up on a silent server around then.
      idleTimeoutMs: 60_000,
      clients: share.map((c) => ({
        address: c.address,
        fetches: STORM_FILES.map((f) => {
          const { size, sha256 } = fleet.variants[c.variant]!.files[f];
          return { target: targetOf(nameFor(fleet, plan, c, f)), size, sha256 };
        }),
      })),
    }));
  const payloadFiles = fleet.variants.flatMap((v) => STORM_FILES.map((f) => v.files[f].path));
  return shares.map((share) => ({
    ...common,
    profile,
    retransmitMs: Number(args['retransmit-ms']),
    maxRetries: 8,
    payloadFiles,
    clients: share.map((c) => ({
      address: c.address,
      fetches: STORM_FILES.map((f, j) => ({
        name: nameFor(fleet, plan, c, f),
        payload: c.variant * STORM_FILES.length + j,
      })),
    })),
  }));
}

async function runStorm(
  fleet: StormFleet,
  netns: string,
  dir: string,
  profile: StormProfile | 'http',
  plan: ServerPlan,
  gen: LoadGenerator,
): Promise<StormFigures> {
  const protocol = protocolOf(profile);
  const server = await startServer(plan, fleet, netns, profile, dir);
  try {
    let disksNote = '';
    if (plan.kind === 'rtftp' && !args.cold) {
      const connected = await waitForDisks(netns, 180_000);
      if (connected < CLIENTS) disksNote = ` (only ${connected} disks connected)`;
    }
    // What rtftp reads from the disks during the storm (metadata and file data) against what
    // it serves: the NBD side's read amplification, on the progress line.
    const nbdRead0 =
      plan.kind === 'rtftp' ? (metricValue(rtftpMetrics(netns), NBD_READ_METRIC) ?? 0) : undefined;
    const load = await prepareLoad(gen, netns, dir, loadSpecs(fleet, profile, plan));
    const tcpDrops0 = protocol === 'http' ? tcpListenDrops(netns) : undefined;
    const perf = args.perf
      ? spawn(
          'perf',
          [
            'record',
            '-e',
            'cpu-clock',
            '-g',
            '-p',
            String(server.pid),
            '-o',
            join(args.perf, `storm-${profile}-${plan.kind}-w${plan.workers ?? 'd'}.data`),
          ],
          {
            stdio: 'ignore',
          },
        )
      : undefined;
    const cpu = new ProcessTreeCpu(server.pid);
    // The NBD server shares the machine's cores with rtftp here (on a real site it runs
    // elsewhere): its CPU goes on the progress line, apart from rtftp's.
    const nbdCpu = plan.kind === 'rtftp' ? new ProcessTreeCpu(fleet.nbd.pid) : undefined;
    const results = await load.go();
    const cpuSeconds = cpu.stop();
    const nbdCpuSeconds = nbdCpu?.stop();
    const tcpDrops1 = protocol === 'http' ? tcpListenDrops(netns) : undefined;
    const drops =
      protocol === 'tftp'
        ? listenerDrops(netns, portOf(plan.kind, protocol))
        : tcpDrops0 !== undefined && tcpDrops1 !== undefined
          ? tcpDrops1 - tcpDrops0
          : undefined;
    if (perf) {
      perf.kill('SIGINT');
      await new Promise((r) => perf.once('exit', r));
    }
    if (args['server-log'] && plan.kind === 'rtftp') {
      mkdirSync(args['server-log'], { recursive: true });
      const file = join(args['server-log'], `storm-${profile}-w${plan.workers ?? 'd'}.log`);
      writeFileSync(file, (server.logs ?? []).map((l) => JSON.stringify(l)).join('\n') + '\n');
      console.error(`rtftp's log: ${file}`);
    }
    const metrics = plan.kind === 'rtftp' ? rtftpMetrics(netns) : undefined;
    const serverRetransmits =
      metrics !== undefined ? metricValue(metrics, 'rtftp_retransmits_total') : undefined;
    const nbdRead =
      metrics !== undefined && nbdRead0 !== undefined
        ? (metricValue(metrics, NBD_READ_METRIC) ?? 0) - nbdRead0
        : undefined;
    const figures = summarize({
      profile,
      server: plan.label + disksNote,
      clients: CLIENTS,
      load: results,
      cpuSeconds,
      peakRssMb: peakRssKb(server.pid) / 1024,
      ...(drops !== undefined ? { listenerDrops: drops } : {}),
      ...(serverRetransmits !== undefined ? { serverRetransmits } : {}),
    });
    const lost =
      protocol === 'http'
        ? `connections ${results.reduce((n, r) => n + ((r as HttpRunResult).connections ?? 0), 0)}, ` +
          `dropped at listen ${figures.listenerDrops ?? '?'}`
        : `client resends ${figures.clientResends}, RRQs dropped ${figures.listenerDrops ?? '?'}`;
    console.error(
      `${profile} ${figures.server}: ${figures.identical}/${CLIENTS} identical, ` +
        `last byte ${figures.lastByteS.toFixed(1)} s, ${figures.mbps.toFixed(1)} MB/s, ` +
        `CPU ${figures.cpuSeconds.toFixed(1)} s, load-gen CPU ${figures.loadCpuSeconds.toFixed(1)} s, ` +
        lost +
        (nbdRead !== undefined ? `, read from NBD ${(nbdRead / 1e6).toFixed(0)} MB` : '') +
        (nbdCpuSeconds !== undefined ? `, nbdkit CPU ${nbdCpuSeconds.toFixed(1)} s` : ''),
    );
    return figures;
  } finally {
    await server.stop();
  }
}

/** The profiles to run, checked; HTTP dropped (with the reason) when this rtftp has none. */
function profilesToRun(skipped: string[]): (StormProfile | 'http')[] {
  const out: (StormProfile | 'http')[] = [];
  for (const p of args.profiles.split(',')) {
    if (p !== 'edk2' && p !== 'ipxe' && p !== 'http') throw new Error(`unknown profile ${p}`);
    const why = p === 'http' ? httpMissingReason() : undefined;
    if (why) {
      console.error(why);
      skipped.push(why);
    } else out.push(p);
  }
  return out;
}

/** The conditions under the table; a TFTP-only run's are what they were before HTTP. */
function conditionsOf(
  fleet: StormFleet,
  profiles: string[],
  gen: LoadGenerator,
  load0: string,
  nginx: boolean,
): string[] {
  const tftp = profiles.some((p) => protocolOf(p) === 'tftp');
  const lines = [
    `Conditions: ${CLIENTS} clients (${fleet.variants.length} disk images, one NBD disk per ` +
      `client, read natively), all at once, each fetching a ${args['kernel-mib']} MiB kernel ` +
      `${args.fetch === 'sequential' ? 'then' : 'and at the same time'} a ` +
      `${args['initrd-mib']} MiB initrd; ${cpus().length} cores, load average ` +
      `${load0} at the start; ${tftp ? `${describeLoadGenerator(gen, LOAD_PROCS)}; ` : ''}` +
      `${args.cold ? 'disks not connected before the storm (--cold)' : "rtftp's disks connected before the storm"}` +
      `${tftp ? `; dnsmasq's tftp-max raised to ${dnsmasqTftpMax()}` : ''}.`,
  ];
  if (profiles.includes('http')) {
    const most = Math.max(1, ...args.workers.split(',').filter(Boolean).map(Number));
    const memory = httpTransferMemoryMiB(most);
    lines.push(
      `HTTP profile: ${describeHttpLoadGenerator(LOAD_PROCS, args.fetch === 'sequential')}; rtftp serves HTTP boot on ` +
        `port ${PORTS.http.rtftp} (--http-port), each client's files from its own disk` +
        (memory !== undefined
          ? `, with --max-transfer-memory raised to ${memory} MiB` +
            (httpTransferMemoryMiB(1) === undefined ? ' in worker mode' : '') +
            ` (each HTTP transfer reserves ` +
            `${HTTP_TRANSFER_MIB * 1024} KiB, ${HTTP_WORKER_TRANSFER_MIB * 1024} KiB in worker ` +
            `mode; ${httpTransfersAtOnce()} at once)`
          : '') +
        (nginx
          ? '; nginx (one process, sendfile) serves the same payloads from local dirs, the ' +
            "baseline of the HTTP rows' ratios (vs nginx, in the targets)"
          : '; no nginx row (--servers), so no HTTP ratio') +
        '; tftp-hpa and dnsmasq serve no HTTP: no HTTP rows for them.',
    );
  }
  return lines;
}

async function main(): Promise<void> {
  const skipped: string[] = [];
  const profiles = profilesToRun(skipped);
  const noNginx = args.servers.split(',').includes('nginx') ? nginxMissingReason() : undefined;
  if (noNginx && profiles.includes('http')) skipped.push(`nginx's HTTP rows: ${noNginx}`);
  const dir = makeTempDir('rtftp-storm');
  const ns = createIsolatedNamespace('storm');
  let fleet: StormFleet | undefined;
  try {
    console.error(`building ${CLIENTS} clients' disks…`);
    fleet = await createStormFleet({
      dir: dir.path,
      clients: CLIENTS,
      kernelBytes: Number(args['kernel-mib']) * MiB,
      initrdBytes: Number(args['initrd-mib']) * MiB,
      variants: Number(args.variants),
    });
    mkdirSync(dir.file('specs'));
    // The HTTP clients are Node's whatever --load says: no C compiler needed for them alone.
    const tftp = profiles.some((p) => protocolOf(p) === 'tftp');
    const gen: LoadGenerator = tftp ? buildLoadGenerator(args.load, dir.path) : { kind: 'node' };
    const load0 = loadavg()[0]!.toFixed(1);
    const figures: StormFigures[] = [];
    for (const profile of profiles) {
      for (const plan of plans(protocolOf(profile))) {
        if (plan.kind === 'nginx' && noNginx) continue;
        figures.push(await runStorm(fleet, ns.netns, dir.file('specs'), profile, plan, gen));
      }
    }
    const conditions = [
      '',
      ...conditionsOf(
        fleet,
        profiles,
        gen,
        load0,
        figures.some((f) => f.server.startsWith('nginx')),
      ),
      ...skipped.map((s) => `Skipped: ${s}.`),
    ];
    console.log(formatStormTable(figures, conditions));
    console.log('\nTargets:\n' + formatTargets(figures));
  } finally {
    await fleet?.stop();
    ns.destroy();
    dir.remove();
  }
}

await main();
