/**
 * The boot storm: the hour after a power cut, when every machine of the room asks for its
 * kernel and initrd at once, each from its own disk.
 *
 * N clients (default 500), each from its own loopback address, each with its own NBD disk
 * (one nbdkit serving hard links of a few disk images, read natively), all at once, each
 * fetching an 8 MiB kernel and then a 32 MiB initrd, as firmware does (--fetch parallel:
 * both files at once), in the EDK2-like profile (blksize 1468, windowsize 4)
 * and the iPXE-like one (tsize probe, then blksize 1432 lock-step); HTTP boot is measured by
 * bench/http.ts, not here yet. The baseline, in the same run: the same payloads from local dirs
 * through tftp-hpa and dnsmasq (tftp-max raised so it can take part). Each server starts
 * afresh for each profile (its peak RSS and CPU are that storm's); rtftp's disks are
 * connected before the clients start (the boot server was up; --cold: not waited for).
 * Everything runs in a network namespace of its own (dnsmasq always binds port 69).
 *
 *   node --import tsx bench/storm.ts [--clients 500] [--profiles edk2,ipxe,http]
 *     [--servers rtftp,tftp-hpa,dnsmasq[,node-floor,node-floor-shared]] [--workers 1,2] [--kernel-mib 8] [--initrd-mib 32]
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
import type { StormFleet } from '../dataplane/test/helpers/storm-fleet.ts';
import type { StormProfile } from '../dataplane/test/helpers/storm-client.ts';
import {
  RTFTP_BIN,
  metricValue,
  peakRssKb,
  startDnsmasqTftp,
  startInTftpd,
  startPeer,
  startRtftp,
} from '../dataplane/test/helpers/tftp-servers.ts';
import type { RunningServer } from '../dataplane/test/helpers/tftp-servers.ts';
import { listenDropsFrom } from '../dataplane/src/tftp/listen-drops.ts';
import { ProcessTreeCpu } from './lib/process-tree-cpu.ts';
import {
  buildLoadGenerator,
  deal,
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
    servers: { type: 'string', default: 'rtftp,tftp-hpa,dnsmasq' },
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
const PORTS = {
  rtftp: 6901,
  'tftp-hpa': 6902,
  dnsmasq: 69,
  'node-floor': 6903,
  'node-floor-shared': 6904,
} as const;
const HTTP_METRICS_PORT = 9701;
const MiB = 1024 * 1024;
/** What Node's dgram alone costs per block (--servers node-floor): bench/lib/node-floor-tftpd.ts. */
const NODE_FLOOR = fileURLToPath(new URL('./lib/node-floor-tftpd.ts', import.meta.url));

interface ServerPlan {
  kind: keyof typeof PORTS;
  label: string;
  workers?: number;
}

function plans(): ServerPlan[] {
  const out: ServerPlan[] = [];
  for (const s of args.servers.split(',')) {
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
    else throw new Error(`unknown server ${s}`);
  }
  return out;
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

async function startServer(
  plan: ServerPlan,
  fleet: StormFleet,
  netns: string,
  profile: string,
): Promise<RunningServer> {
  const port = PORTS[plan.kind];
  if (plan.kind === 'tftp-hpa')
    return startInTftpd({ root: fleet.peerRoot, address: HOST, port, netns });
  if (plan.kind === 'node-floor' || plan.kind === 'node-floor-shared') {
    const argv = [process.execPath, '--import', 'tsx', NODE_FLOOR, fleet.peerRoot, HOST];
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
  // One directory per storm, and Node's own file names: every thread (the server, worker
  // threads, tsx's loader thread) writes its own profile; one fixed name let the last
  // thread to exit overwrite the server's.
  const prof = args['cpu-prof'];
  const nodeArgs = prof
    ? ['--cpu-prof', `--cpu-prof-dir=${join(prof, `storm-${profile}-w${plan.workers ?? 'd'}`)}`]
    : [];
  // perf resolves JIT-compiled JavaScript through /tmp/perf-<pid>.map.
  if (args.perf) nodeArgs.push('--perf-basic-prof-only-functions');
  return startRtftp({
    root: fleet.rtftpRoot,
    listen: [HOST],
    port,
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
      ...args['rtftp-args'].split(' ').filter(Boolean),
    ],
  });
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

/** Waits until every client's disk is connected (the boot server was up before the storm). */
async function waitForDisks(netns: string, timeoutMs: number): Promise<number> {
  const url = `http://${HOST}:${HTTP_METRICS_PORT}/metrics`;
  const deadline = Date.now() + timeoutMs;
  let connected = 0;
  while (Date.now() < deadline) {
    const text = curlInNetns(netns, url);
    connected = metricValue(text, 'rtftp_nbd_sessions_active{backend="native"}') ?? 0;
    if (connected >= CLIENTS) return connected;
    await new Promise((r) => setTimeout(r, 500));
  }
  return connected;
}

async function runStorm(
  fleet: StormFleet,
  netns: string,
  dir: string,
  profile: StormProfile,
  plan: ServerPlan,
  gen: LoadGenerator,
): Promise<StormFigures> {
  const server = await startServer(plan, fleet, netns, profile);
  try {
    let disksNote = '';
    if (plan.kind === 'rtftp' && !args.cold) {
      const connected = await waitForDisks(netns, 180_000);
      if (connected < CLIENTS) disksNote = ` (only ${connected} disks connected)`;
    }
    const payloadFiles = fleet.variants.flatMap((v) => STORM_FILES.map((f) => v.files[f].path));
    const specs = deal(fleet.clients, LOAD_PROCS).map((share): StormLoadSpec => ({
      host: HOST,
      port: PORTS[plan.kind],
      profile,
      retransmitMs: Number(args['retransmit-ms']),
      maxRetries: 8,
      sequential: args.fetch === 'sequential',
      payloadFiles,
      clients: share.map((c) => ({
        address: c.address,
        fetches: STORM_FILES.map((f, j) => ({
          name: plan.kind === 'rtftp' ? fleet.rtftpPath(c, f) : fleet.peerPath(c, f),
          payload: c.variant * STORM_FILES.length + j,
        })),
      })),
    }));
    const load = await prepareLoad(gen, netns, dir, specs);
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
    const results = await load.go();
    const cpuSeconds = cpu.stop();
    const drops = listenerDrops(netns, PORTS[plan.kind]);
    if (perf) {
      perf.kill('SIGINT');
      await new Promise((r) => perf.once('exit', r));
    }
    if (args['server-log'] && plan.kind === 'rtftp') {
      mkdirSync(args['server-log'], { recursive: true });
      const file = join(args['server-log'], `storm-${profile}-w${plan.workers ?? 'd'}.log`);
      writeFileSync(file, server.logs.map((l) => JSON.stringify(l)).join('\n') + '\n');
      console.error(`rtftp's log: ${file}`);
    }
    const serverRetransmits =
      plan.kind === 'rtftp'
        ? metricValue(
            curlInNetns(netns, `http://${HOST}:${HTTP_METRICS_PORT}/metrics`),
            'rtftp_retransmits_total',
          )
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
    console.error(
      `${profile} ${figures.server}: ${figures.identical}/${CLIENTS} identical, ` +
        `last byte ${figures.lastByteS.toFixed(1)} s, ${figures.mbps.toFixed(1)} MB/s, ` +
        `CPU ${figures.cpuSeconds.toFixed(1)} s, load-gen CPU ${figures.loadCpuSeconds.toFixed(1)} s, ` +
        `client resends ${figures.clientResends}, RRQs dropped ${figures.listenerDrops ?? '?'}`,
    );
    return figures;
  } finally {
    await server.stop();
  }
}

async function main(): Promise<void> {
  const profiles = args.profiles.split(',');
  const skipped: string[] = [];
  if (profiles.includes('http')) {
    const why = httpMissingReason();
    if (why) {
      console.error(why);
      skipped.push(why);
    } else {
      skipped.push(
        'HTTP profile: not in this benchmark yet (bench/http.ts measures HTTP boot, ' +
          'N clients from their own addresses; worker mode does not serve HTTP)',
      );
    }
  }
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
    const gen = buildLoadGenerator(args.load, dir.path);
    const load0 = loadavg()[0]!.toFixed(1);
    const figures: StormFigures[] = [];
    for (const profile of profiles) {
      if (profile === 'http') continue;
      if (profile !== 'edk2' && profile !== 'ipxe') throw new Error(`unknown profile ${profile}`);
      for (const plan of plans())
        figures.push(await runStorm(fleet, ns.netns, dir.file('specs'), profile, plan, gen));
    }
    const conditions = [
      '',
      `Conditions: ${CLIENTS} clients (${fleet.variants.length} disk images, one NBD disk per ` +
        `client, read natively), all at once, each fetching a ${args['kernel-mib']} MiB kernel ` +
        `${args.fetch === 'sequential' ? 'then' : 'and at the same time'} a ` +
        `${args['initrd-mib']} MiB initrd; ${cpus().length} cores, load average ` +
        `${load0} at the start; ${describeLoadGenerator(gen, LOAD_PROCS)}; ` +
        `${args.cold ? 'disks not connected before the storm (--cold)' : "rtftp's disks connected before the storm"}; ` +
        `dnsmasq's tftp-max raised to ${dnsmasqTftpMax()}.`,
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
