/**
 * The key operator scenarios against a real cluster (kind, k3s, ...) when KUBECONFIG is set:
 * the CRD from crds/ is applied, the real operator and sync processes run here with that
 * kubeconfig, in a throwaway namespace deleted afterwards. Skipped, saying why, otherwise.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';
import {
  ApiextensionsV1Api,
  CoreV1Api,
  CustomObjectsApi,
  KubeConfig,
  type V1CustomResourceDefinition,
} from '@kubernetes/client-node';
import {
  bootClient,
  startOperator,
  startSync,
  waitFor,
  type SpawnedProcess,
} from '../operator/test/helpers/cluster.ts';

const kubeconfig = process.env.KUBECONFIG;
const skip = kubeconfig
  ? false
  : 'KUBECONFIG is not set: no real cluster to run the operator against (kind or k3s will do)';
if (skip) console.log(`# skipped e2e/operator-real-cluster.test.ts: ${skip}`);

const group = 'rtftp.io';
const version = 'v1alpha1';
const plural = 'bootclients';
const namespace = `rtftp-e2e-${Date.now().toString(36)}`;
let custom: CustomObjectsApi;
let core: CoreV1Api;
let dir: string;
const procs: SpawnedProcess[] = [];

before(async () => {
  if (skip) return;
  const kc = new KubeConfig();
  kc.loadFromDefault();
  custom = kc.makeApiClient(CustomObjectsApi);
  core = kc.makeApiClient(CoreV1Api);
  const ext = kc.makeApiClient(ApiextensionsV1Api);
  const crd = parse(
    readFileSync(
      fileURLToPath(new URL('../crds/bootclients.rtftp.io.yaml', import.meta.url)),
      'utf8',
    ),
  ) as V1CustomResourceDefinition;
  try {
    const existing = await ext.readCustomResourceDefinition({ name: crd.metadata!.name! });
    crd.metadata!.resourceVersion = existing.metadata?.resourceVersion;
    await ext.replaceCustomResourceDefinition({ name: crd.metadata!.name!, body: crd });
  } catch (err) {
    if ((err as { code?: number }).code !== 404) throw err;
    await ext.createCustomResourceDefinition({ body: crd });
  }
  await waitFor(
    async () => {
      const c = await ext.readCustomResourceDefinition({ name: crd.metadata!.name! });
      return c.status?.conditions?.some((x) => x.type === 'Established' && x.status === 'True');
    },
    30_000,
    'CRD established',
  );
  await core.createNamespace({ body: { metadata: { name: namespace } } });
  dir = mkdtempSync(join(tmpdir(), 'rtftp-e2e-configs-'));
  procs.push(await startSync({ kubeconfig: kubeconfig!, namespace, dir }));
  const op = await startOperator({
    kubeconfig: kubeconfig!,
    namespace,
    args: ['--lease-duration', '15', '--renew-deadline', '10', '--retry-period', '2'],
  });
  procs.push(op);
  await op.waitForLog((l) => l.msg === 'Leadership acquired', 60_000);
});

after(async () => {
  for (const p of procs) await p.stop();
  if (skip) return;
  await core.deleteNamespace({ name: namespace }).catch(() => undefined);
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const apply = async (obj: ReturnType<typeof bootClient>) => {
  const name = obj.metadata.name;
  try {
    const cur = (await custom.getNamespacedCustomObject({
      group,
      version,
      namespace,
      plural,
      name,
    })) as { metadata: { resourceVersion: string } };
    return custom.replaceNamespacedCustomObject({
      group,
      version,
      namespace,
      plural,
      name,
      body: {
        ...obj,
        metadata: { ...obj.metadata, resourceVersion: cur.metadata.resourceVersion },
      },
    });
  } catch (err) {
    if ((err as { code?: number }).code !== 404) throw err;
    return custom.createNamespacedCustomObject({ group, version, namespace, plural, body: obj });
  }
};
const conditions = async (name: string) => {
  const o = (await custom.getNamespacedCustomObject({
    group,
    version,
    namespace,
    plural,
    name,
  })) as { status?: { conditions?: { type: string; status: string; reason: string }[] } };
  return Object.fromEntries((o.status?.conditions ?? []).map((c) => [c.type, c]));
};
const file = (ip: string) => join(dir, `${ip}.nbd`);

test(
  'apply renders <ip>.nbd within 5 s; update changes it; delete removes it',
  { skip },
  async (t) => {
    const t0 = Date.now();
    await apply(bootClient('board-1', { ip: '10.77.0.5', url: 'nbd://10.77.0.1/one' }));
    await waitFor(() => existsSync(file('10.77.0.5')), 5000, 'config file');
    t.diagnostic(`apply -> file: ${Date.now() - t0} ms`);
    await waitFor(
      async () => (await conditions('board-1')).Rendered?.status === 'True',
      10_000,
      'Rendered=True',
    );
    await apply(bootClient('board-1', { ip: '10.77.0.5', url: 'nbd://10.77.0.1/two' }));
    await waitFor(() => readFileSync(file('10.77.0.5'), 'utf8').includes('/two'), 5000, 'updated');
    await custom.deleteNamespacedCustomObject({
      group,
      version,
      namespace,
      plural,
      name: 'board-1',
    });
    await waitFor(() => !existsSync(file('10.77.0.5')), 5000, 'removed');
  },
);

test(
  'conflict: the older keeps the IP, the newer takes over after the holder is deleted',
  { skip },
  async () => {
    await apply(bootClient('holder', { ip: '10.77.1.1', url: 'nbd://10.77.0.1/holder' }));
    await waitFor(() => existsSync(file('10.77.1.1')), 5000, 'holder');
    await new Promise((r) => setTimeout(r, 1100));
    await apply(bootClient('newer', { ip: '10.77.1.1', url: 'nbd://10.77.0.1/newer' }));
    await waitFor(
      async () => (await conditions('newer')).Conflict?.status === 'True',
      10_000,
      'Conflict=True',
    );
    assert.match(readFileSync(file('10.77.1.1'), 'utf8'), /holder/);
    await custom.deleteNamespacedCustomObject({
      group,
      version,
      namespace,
      plural,
      name: 'holder',
    });
    await waitFor(
      () => readFileSync(file('10.77.1.1'), 'utf8').includes('newer'),
      5000,
      'takeover',
    );
  },
);

test(
  'the API server refuses a spec without a mount at "/"; the operator flags what only it can check',
  { skip },
  async () => {
    await assert.rejects(
      apply(
        bootClient('no-root', { ip: '10.77.2.1', mounts: [{ partition: 1, mountpoint: '/boot' }] }),
      ),
      (e: { code?: number }) => e.code === 422,
    );
    await apply(
      bootClient('twice', {
        ip: '10.77.2.2',
        mounts: [
          { partition: 1, mountpoint: '/' },
          { partition: 2, mountpoint: '/' },
        ],
      }),
    );
    await waitFor(
      async () => (await conditions('twice')).Accepted?.reason === 'Invalid',
      10_000,
      'Accepted=False Invalid',
    );
  },
);
