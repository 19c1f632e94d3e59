/**
 * Runs the built images (scripts/build-image.sh) with podman exactly as the chart's rendered
 * pod spec says: `podman run` arguments are derived from `helm template` output (user and
 * group, read-only root filesystem, dropped and added capabilities, no_new_privs, the
 * command and args, env with its field references, and each volume mount), never restated.
 * What a test supplies is only what the cluster would: a host directory for each volume,
 * the values of field references, and a network namespace of its own standing for the
 * node's network (the pod is hostNetwork).
 *
 * Two differences from the kubelet are imitated rather than inherited:
 * - podman puts added capabilities in the ambient set of a non-root process; Kubernetes does
 *   not. The command runs under `setpriv --inh-caps=-all --ambient-caps=-all`, so that only a
 *   file capability can grant one, as on a node (setpriv execs: PID 1 stays the command's).
 * - podman's --read-only mounts tmpfs on /tmp and /run; Kubernetes' readOnlyRootFilesystem
 *   does not (--read-only-tmpfs=false): only the chart's emptyDirs are writable.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync, readdirSync, readlinkSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  containerOf,
  findObject,
  helmMissingReason,
  podSpecOf,
  renderChart,
  type Container,
  type K8sObject,
  type PodSpec,
} from '../../charts/test/helm.ts';
import { SNAPSHOT_MARKER, renderSnapshotMarker } from '../../common/src/snapshot-marker.ts';
import { startProcess, type TrackedProcess } from '../harness/processes.ts';

/** The names scripts/build-image.sh gives the images; the chart renders them with these values. */
export const BUILT_IMAGES = { image: { registry: 'localhost', tag: 'dev' } };

/**
 * Why podman cannot run the images here, or undefined when it can. With
 * RTFTP_REQUIRE_CONTAINERS=1 (scripts/test.sh, CI) a reason is an error, not a skip.
 */
export function podmanMissingReason(images: string[]): string | undefined {
  const reason = missingReason(images);
  if (reason && process.env.RTFTP_REQUIRE_CONTAINERS === '1')
    throw new Error(`the container tests must run here but cannot: ${reason}`);
  return reason;
}

function missingReason(images: string[]): string | undefined {
  if (process.getuid?.() !== 0) return 'needs root (podman, network namespaces)';
  for (const tool of ['podman', 'runc', 'ip']) {
    if (spawnSync('sh', ['-c', `command -v ${tool}`]).status !== 0)
      return `${tool} is not installed (scripts/setup.sh installs it)`;
  }
  const helm = helmMissingReason();
  if (helm) return helm;
  for (const image of images) {
    if (spawnSync('podman', ['image', 'exists', image]).status !== 0)
      return `${image} is not built: run scripts/build-image.sh`;
  }
  return undefined;
}

/**
 * Stands in for the chart's config-sync sidecar where a test runs the dataplane container
 * alone: the chart runs the dataplane with `--require-snapshot`, which answers nothing until
 * the config dir holds a complete snapshot marker (dataplane/src/config/snapshot-gate.ts).
 * Written as the sidecar writes it: after the configs, a temp file renamed into place.
 */
export function writeCompleteSnapshot(configDir: string): void {
  const tmp = join(configDir, '.snapshot.tmp');
  const marker = renderSnapshotMarker({
    complete: true,
    source: 'api',
    resourceVersions: {},
    syncedAt: new Date().toISOString(),
  });
  writeFileSync(tmp, marker, { mode: 0o644 });
  renameSync(tmp, join(configDir, SNAPSHOT_MARKER));
}

/** The rendered objects for the built images plus `values`. */
export function renderForBuiltImages(values: object = {}): K8sObject[] {
  return renderChart(mergeValues(BUILT_IMAGES, values));
}

function mergeValues(a: object, b: object): object {
  const out: Record<string, unknown> = { ...a };
  for (const [k, v] of Object.entries(b)) {
    const prev = out[k];
    out[k] =
      prev && typeof prev === 'object' && v && typeof v === 'object' && !Array.isArray(v)
        ? mergeValues(prev, v)
        : v;
  }
  return out;
}

export interface RenderedContainer {
  pod: PodSpec;
  container: Container;
  terminationGracePeriodSeconds: number;
}

export function renderedContainer(
  objects: K8sObject[],
  kind: 'DaemonSet' | 'Deployment',
  name: string,
): RenderedContainer {
  const owner = findObject(objects, kind);
  const pod = podSpecOf(owner);
  const grace = (pod as { terminationGracePeriodSeconds?: number }).terminationGracePeriodSeconds;
  return {
    pod,
    container: containerOf(owner, name),
    terminationGracePeriodSeconds: grace ?? 30,
  };
}

/** What the cluster supplies to one container of the rendered pod. */
export interface PodSite {
  /** Container name for podman (unique per test run). */
  name: string;
  /** The network namespace standing for the node's network. */
  netns: string;
  /** A host directory for each volume the container mounts, by volume name. */
  volumes: Record<string, string>;
  /** Values of the downward-API field references the container's env names. */
  fieldRefs?: Record<string, string>;
  /** What the test adds that a cluster would put elsewhere (a kubeconfig, an NBD socket). */
  extraEnv?: Record<string, string>;
  extraMounts?: string[];
}

/** ulimits at or below this host's hard limits (podman cannot raise them; DESIGN.md). */
function ulimits(): string[] {
  const limits = readFileSync('/proc/self/limits', 'utf8');
  const hard = (label: string, cap: number) => {
    const v = limits.match(new RegExp(`^${label}\\s+\\S+\\s+(\\S+)`, 'm'))?.[1];
    return v === undefined || v === 'unlimited' ? cap : Math.min(Number(v), cap);
  };
  // runc here refuses an nproc above ~32k even under a higher hard limit; 4096 is plenty.
  const nofile = hard('Max open files', 65536);
  const nproc = hard('Max processes', 4096);
  return ['--ulimit', `nofile=${nofile}:${nofile}`, '--ulimit', `nproc=${nproc}:${nproc}`];
}

/** `podman run` arguments for one rendered container, derived from its spec. */
export function podmanRunArgs(rendered: RenderedContainer, site: PodSite): string[] {
  const { pod, container } = rendered;
  const sc = { ...pod.securityContext, ...container.securityContext } as NonNullable<
    Container['securityContext']
  > & { privileged?: boolean; seccompProfile?: { type?: string } };
  if (sc.privileged) throw new Error(`${container.name}: privileged is not modelled`);
  if (sc.seccompProfile?.type && sc.seccompProfile.type !== 'RuntimeDefault')
    throw new Error(`${container.name}: seccomp ${sc.seccompProfile.type} is not modelled`);
  const args = [
    'run',
    '--rm',
    '--name',
    site.name,
    '--runtime',
    'runc',
    '--pull=never',
    '--network',
    `ns:/run/netns/${site.netns}`,
    ...ulimits(),
    '--user',
    `${sc.runAsUser ?? 0}:${sc.runAsGroup ?? 0}`,
  ];
  for (const group of pod.securityContext?.supplementalGroups ?? [])
    args.push('--group-add', String(group));
  if (sc.readOnlyRootFilesystem) args.push('--read-only', '--read-only-tmpfs=false');
  for (const cap of sc.capabilities?.drop ?? []) args.push('--cap-drop', cap);
  for (const cap of sc.capabilities?.add ?? []) args.push('--cap-add', cap);
  if (sc.allowPrivilegeEscalation === false) args.push('--security-opt', 'no-new-privileges');
  for (const mount of container.volumeMounts ?? []) {
    const host = site.volumes[mount.name];
    if (!host) throw new Error(`${container.name}: no host directory for volume ${mount.name}`);
    args.push('-v', `${host}:${mount.mountPath}${mount.readOnly ? ':ro' : ''}`);
  }
  for (const extra of site.extraMounts ?? []) args.push('-v', extra);
  const env = new Map<string, string>();
  for (const e of container.env ?? []) {
    const value = (e as { value?: string }).value;
    const field = e.valueFrom?.fieldRef?.fieldPath;
    if (value !== undefined) env.set(e.name, value);
    else if (field !== undefined) {
      const v = site.fieldRefs?.[field];
      if (v === undefined) throw new Error(`${container.name}: no value for fieldRef ${field}`);
      env.set(e.name, v);
    } else throw new Error(`${container.name}: env ${e.name} has a source not modelled`);
  }
  for (const [k, v] of Object.entries(site.extraEnv ?? {})) env.set(k, v);
  for (const [k, v] of env) args.push('-e', `${k}=${v}`);
  const command = container.command;
  if (!command?.length) throw new Error(`${container.name}: the chart renders no command`);
  args.push(
    '--entrypoint',
    JSON.stringify(['setpriv', '--inh-caps=-all', '--ambient-caps=-all', ...command]),
  );
  if (!container.image) throw new Error(`${container.name}: no image`);
  args.push(container.image);
  // $(VAR) in args expands from the container's env, as the kubelet does.
  for (const arg of container.args ?? [])
    args.push(
      arg.replace(/\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g, (m, name: string) => env.get(name) ?? m),
    );
  return args;
}

/** A running container: `podman run` attached, its output as the harness keeps it. */
export interface RunningContainer {
  readonly name: string;
  readonly process: TrackedProcess;
  /** Host pid of the container's PID 1. */
  pid1(): number;
  /** `podman stop` with the pod's grace period; resolves with podman run's exit code. */
  stop(): Promise<number | null>;
  /** Sends a signal to PID 1 (podman kill). */
  kill(signal: string): void;
  /** Force-removes the container; safe to call twice. */
  remove(): void;
}

export function runContainer(rendered: RenderedContainer, site: PodSite): RunningContainer {
  spawnSync('podman', ['rm', '-f', '-t', '0', site.name]);
  const process = startProcess(site.name, 'podman', podmanRunArgs(rendered, site));
  return {
    name: site.name,
    process,
    pid1() {
      const out = spawnSync('podman', ['inspect', '--format', '{{.State.Pid}}', site.name], {
        encoding: 'utf8',
      });
      const pid = Number(out.stdout.trim());
      if (!pid) throw new Error(`${site.name}: no PID 1 (${out.stderr.trim()})`);
      return pid;
    },
    async stop() {
      spawnSync('podman', [
        'stop',
        '-t',
        String(rendered.terminationGracePeriodSeconds),
        site.name,
      ]);
      return process.exited;
    },
    kill(signal) {
      spawnSync('podman', ['kill', '--signal', signal, site.name]);
    },
    remove() {
      spawnSync('podman', ['rm', '-f', '-t', '0', site.name]);
    },
  };
}

export interface ProcessInfo {
  pid: number;
  ppid: number;
  comm: string;
  state: string;
}

/** Every process in the same pid namespace as host pid `pid1` (the container's processes). */
export function containerProcesses(pid1: number): ProcessInfo[] {
  const ns = (pid: number | string) => {
    try {
      return readlinkSync(`/proc/${pid}/ns/pid`);
    } catch {
      return undefined;
    }
  };
  const target = ns(pid1);
  const out: ProcessInfo[] = [];
  if (!target) return out;
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry) || ns(entry) !== target) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      // pid (comm) state ppid ...: comm may hold spaces and parentheses.
      const close = stat.lastIndexOf(')');
      const [state = '', ppid = '0'] = stat.slice(close + 2).split(' ');
      out.push({
        pid: Number(entry),
        ppid: Number(ppid),
        comm: stat.slice(stat.indexOf('(') + 1, close),
        state,
      });
    } catch {
      // exited meanwhile
    }
  }
  return out;
}

/** The permitted and effective capability sets and uid of a host pid. */
export function processCredentials(pid: number): { uid: number; capPrm: bigint; capEff: bigint } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const field = (name: string) => status.match(new RegExp(`^${name}:\\s*(\\S+)`, 'm'))?.[1] ?? '';
  return {
    uid: Number(field('Uid')),
    capPrm: BigInt(`0x${field('CapPrm')}`),
    capEff: BigInt(`0x${field('CapEff')}`),
  };
}

export const CAP_NET_BIND_SERVICE = 1n << 10n;
