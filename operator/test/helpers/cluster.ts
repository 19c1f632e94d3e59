/**
 * Test helpers for anything that needs "a cluster with the operator": the fake API server
 * (in this process, real HTTP) and the real operator and sync processes, spawned from
 * bin/rtftp-operator.js. Used by operator/test and by e2e tests that apply a BootClient and
 * expect its `<ip>.nbd` in a dataplane root:
 *
 *   const cluster = await startTestCluster();
 *   const op = await startOperator({ kubeconfig: cluster.kubeconfigPath, namespace: cluster.namespace });
 *   const sync = await startSync({ kubeconfig: cluster.kubeconfigPath, namespace: cluster.namespace, dir: root });
 *   await cluster.apply(bootClient('board-1', { ip: '127.0.0.2', url: 'nbd://127.0.0.1:10809/disk' }));
 *   await waitFor(() => existsSync(join(root, '127.0.0.2.nbd')), 5000, 'config rendered');
 *   ... finally: await sync.stop(); await op.stop(); await cluster.stop();
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import {
  BOOTCLIENT_API_VERSION,
  BOOTCLIENT_KIND,
  type BootClientSpec,
} from '../../../common/src/bootclient.ts';
import { FakeApiServer, type FakeApiServerOptions } from '../fake-apiserver/server.ts';

const OPERATOR_BIN = fileURLToPath(new URL('../../../bin/rtftp-operator.js', import.meta.url));

export interface KubeObjectInput {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; [k: string]: unknown };
  [k: string]: unknown;
}

const PLURALS: Record<string, string> = {
  BootClient: 'bootclients',
  BootNetwork: 'bootnetworks',
  ConfigMap: 'configmaps',
  Lease: 'leases',
  Event: 'events',
  Namespace: 'namespaces',
};
/** Kinds without a namespace: their paths have none, and `namespace` arguments are ignored. */
const CLUSTER_SCOPED = new Set(['BootNetwork', 'Namespace']);

export interface TestCluster {
  server: FakeApiServer;
  kubeconfigPath: string;
  namespace: string;
  /** Creates or replaces (like kubectl apply, without field merging); returns the stored object. */
  apply(obj: KubeObjectInput): Promise<Record<string, unknown>>;
  delete(kind: string, name: string, namespace?: string): Promise<void>;
  get(kind: string, name: string, namespace?: string): Promise<Record<string, unknown> | null>;
  /** Takes the API server away (connections refused), keeping its objects. */
  stopApi(): Promise<void>;
  /** Brings it back on the same address: the kubeconfig stays valid. */
  startApi(): Promise<void>;
  stop(): Promise<void>;
}

/** A BootClient object with sensible defaults: one mount at "/", tftpRoot "/boot". */
export function bootClient(
  name: string,
  spec: Partial<BootClientSpec> & { ip: string; url?: string },
): KubeObjectInput {
  const { url, ...rest } = spec;
  return {
    apiVersion: BOOTCLIENT_API_VERSION,
    kind: BOOTCLIENT_KIND,
    metadata: { name },
    spec: {
      nbd: { url: url ?? 'nbd://127.0.0.1:10809/disk' },
      mounts: [{ partition: 1, mountpoint: '/' }],
      tftpRoot: '/boot',
      ...rest,
    },
  };
}

function pathOf(apiVersion: string, kind: string, namespace: string, name?: string): string {
  const plural = PLURALS[kind];
  if (!plural) throw new Error(`test cluster: unknown kind ${kind}`);
  const base = apiVersion.includes('/') ? `/apis/${apiVersion}` : `/api/${apiVersion}`;
  const scope = CLUSTER_SCOPED.has(kind) ? '' : `/namespaces/${namespace}`;
  return `${base}${scope}/${plural}${name ? '/' + name : ''}`;
}

const API_VERSIONS: Record<string, string> = {
  BootClient: BOOTCLIENT_API_VERSION,
  BootNetwork: BOOTCLIENT_API_VERSION,
  Namespace: 'v1',
  ConfigMap: 'v1',
  Lease: 'coordination.k8s.io/v1',
  Event: 'events.k8s.io/v1',
};

export async function startTestCluster(
  opts: { namespace?: string } & FakeApiServerOptions = {},
): Promise<TestCluster> {
  const namespace = opts.namespace ?? 'rtftp-test';
  const server = new FakeApiServer(opts);
  await server.listen();
  const port = Number(new URL(server.url).port);
  let apiUp = true;
  const dir = mkdtempSync(join(tmpdir(), 'rtftp-cluster-'));
  const kubeconfigPath = server.writeKubeconfig(join(dir, 'kubeconfig'), namespace);
  const request = async (method: string, path: string, body?: unknown) => {
    const res = await fetch(server.url + path, {
      method,
      headers: { 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const json = (await res.json()) as Record<string, unknown>;
    return { status: res.status, json };
  };
  return {
    server,
    kubeconfigPath,
    namespace,
    async apply(obj) {
      const ns = obj.metadata.namespace ?? namespace;
      let r;
      // Like kubectl apply, a write that lost a race with the operator's own status write
      // (409 on a stale resourceVersion) is tried again on the latest version.
      for (let attempt = 0; ; attempt++) {
        const existing = await request(
          'GET',
          pathOf(obj.apiVersion, obj.kind, ns, obj.metadata.name),
        );
        const body = structuredClone(obj);
        if (existing.status === 200) {
          const meta = existing.json.metadata as Record<string, unknown>;
          body.metadata = { ...body.metadata, resourceVersion: meta.resourceVersion };
          r = await request('PUT', pathOf(obj.apiVersion, obj.kind, ns, obj.metadata.name), body);
        } else r = await request('POST', pathOf(obj.apiVersion, obj.kind, ns), body);
        if (r.status !== 409 || attempt >= 4) break;
      }
      if (r.status >= 300)
        throw Object.assign(
          new Error(`apply ${obj.kind}/${obj.metadata.name}: ${r.json.message}`),
          { status: r.status, body: r.json },
        );
      return r.json;
    },
    async delete(kind, name, ns = namespace) {
      const r = await request('DELETE', pathOf(API_VERSIONS[kind] ?? 'v1', kind, ns, name));
      if (r.status >= 300 && r.status !== 404)
        throw new Error(`delete ${kind}/${name}: ${r.json.message}`);
    },
    async get(kind, name, ns = namespace) {
      const r = await request('GET', pathOf(API_VERSIONS[kind] ?? 'v1', kind, ns, name));
      return r.status === 200 ? r.json : null;
    },
    async stopApi() {
      if (!apiUp) return;
      apiUp = false;
      await server.close();
    },
    async startApi() {
      if (apiUp) return;
      await server.listen(port);
      apiUp = true;
    },
    async stop() {
      if (apiUp) await server.close();
      apiUp = false;
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export interface SpawnedProcess {
  proc: ChildProcess;
  /** Parsed JSON log lines so far (non-JSON lines as { raw }). */
  logs: Record<string, unknown>[];
  waitForLog(
    pred: (line: Record<string, unknown>) => boolean,
    timeoutMs?: number,
  ): Promise<Record<string, unknown>>;
  exited: Promise<number | null>;
  stop(): Promise<void>;
}

function spawnOperator(
  args: string[],
  kubeconfig: string,
  env: NodeJS.ProcessEnv = {},
  nodeArgs: string[] = [],
): SpawnedProcess {
  const proc = spawn(process.execPath, [...nodeArgs, OPERATOR_BIN, ...args], {
    env: { ...process.env, KUBECONFIG: kubeconfig, RTFTP_OPERATOR_EXIT_WITH_PARENT: '1', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const logs: Record<string, unknown>[] = [];
  const waiters = new Set<() => void>();
  const onLine = (line: string) => {
    try {
      logs.push(JSON.parse(line));
    } catch {
      logs.push({ raw: line });
    }
    for (const w of waiters) w();
  };
  createInterface(proc.stdout!).on('line', onLine);
  createInterface(proc.stderr!).on('line', onLine);
  const exited = new Promise<number | null>((r) => proc.once('exit', (code) => r(code)));
  return {
    proc,
    logs,
    exited,
    waitForLog(pred, timeoutMs = 20_000) {
      return new Promise((resolve, reject) => {
        const check = () => {
          const hit = logs.find(pred);
          if (hit) {
            waiters.delete(check);
            clearTimeout(timer);
            resolve(hit);
          }
        };
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(
            new Error(
              `log line not seen in ${timeoutMs} ms; last lines:\n${logs
                .slice(-8)
                .map((l) => JSON.stringify(l))
                .join('\n')}`,
            ),
          );
        }, timeoutMs);
        waiters.add(check);
        check();
      });
    },
    async stop() {
      if (proc.exitCode !== null || proc.signalCode !== null) return;
      proc.kill('SIGTERM');
      const timer = setTimeout(() => proc.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(timer);
    },
  };
}

/** Starts the controller; resolves once its HTTP server listens (port in `.port`). */
export async function startOperator(o: {
  kubeconfig: string;
  namespace: string;
  identity?: string;
  args?: string[];
  env?: NodeJS.ProcessEnv;
  /** Options for node itself, e.g. ['--cpu-prof'] to profile the operator. */
  nodeArgs?: string[];
}): Promise<SpawnedProcess & { port: number }> {
  const p = spawnOperator(
    [
      'controller',
      '--namespace',
      o.namespace,
      '--metrics-port',
      '0',
      '--metrics-listen',
      '127.0.0.1',
      '--identity',
      o.identity ?? `op-${Math.random().toString(36).slice(2, 8)}`,
      '--lease-duration',
      '4',
      '--renew-deadline',
      '3',
      '--retry-period',
      '0.5',
      ...(o.args ?? []),
    ],
    o.kubeconfig,
    o.env,
    o.nodeArgs,
  );
  try {
    const line = await p.waitForLog((l) => l.msg === 'HTTP server listening');
    return Object.assign(p, { port: Number(line.port) });
  } catch (err) {
    await p.stop();
    throw err;
  }
}

/**
 * Starts the sync sidecar writing into `dir`; resolves once it has synced the first time
 * (`until: 'listening'`: once its HTTP server listens, for an API server that is down).
 * Without `nodeName` it reports nothing (NODE_NAME is cleared for it).
 */
export async function startSync(o: {
  kubeconfig: string;
  namespace: string;
  dir: string;
  /** The node copy of the snapshot (--snapshot-dir). */
  snapshotDir?: string;
  /** --node-name: report the applied shard versions in a Lease. */
  nodeName?: string;
  args?: string[];
  until?: 'synced' | 'listening';
}): Promise<SpawnedProcess & { port: number }> {
  const p = spawnOperator(
    [
      'sync',
      '--namespace',
      o.namespace,
      '--dir',
      o.dir,
      '--metrics-port',
      '0',
      '--metrics-listen',
      '127.0.0.1',
      ...(o.snapshotDir ? ['--snapshot-dir', o.snapshotDir] : []),
      ...(o.nodeName ? ['--node-name', o.nodeName, '--identity', `sync-${o.nodeName}`] : []),
      ...(o.args ?? []),
    ],
    o.kubeconfig,
    { NODE_NAME: '', POD_NAME: '' },
  );
  try {
    const line = await p.waitForLog((l) => l.msg === 'HTTP server listening');
    if ((o.until ?? 'synced') === 'synced') await p.waitForLog((l) => l.msg === 'Informer synced');
    return Object.assign(p, { port: Number(line.port) });
  } catch (err) {
    await p.stop();
    throw err;
  }
}

/** Polls until `fn` is truthy; throws naming `what` after `timeoutMs`. */
export async function waitFor<T>(
  fn: () => T | Promise<T>,
  timeoutMs: number,
  what: string,
): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v as NonNullable<T>;
    if (Date.now() > deadline)
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}
