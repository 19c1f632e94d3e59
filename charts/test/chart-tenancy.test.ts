/**
 * The chart's side of the tenant boundaries (docs/security.md): the operator's ConfigMap
 * writes pinned to its shard names, the cluster-wide reads BootNetwork admission needs
 * and nothing more, and the values that reach the programs (cluster CIDRs, claim
 * retention, --nbd-allow / --nbd-deny, the shard count of both operator and sync sidecar)
 * parsed by the programs' own command-line parsers.
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { parseCli as parseDataplaneCli } from '../../dataplane/src/cli.ts';
import { parseCli as parseOperatorCli } from '../../operator/src/cli.ts';
import { formatCidr } from '../../common/src/cidr.ts';
import {
  NAMESPACE,
  containerOf,
  findObject,
  helmMissingReason,
  helmWithValues,
  renderChart,
  type K8sObject,
} from './helm.ts';

const skip = helmMissingReason();
if (skip) console.log(`# skipped chart tenancy tests: ${skip}`);

interface Rule {
  apiGroups: string[];
  resources: string[];
  verbs: string[];
  resourceNames?: string[];
}
const rulesOf = (obj: K8sObject) => (obj as unknown as { rules: Rule[] }).rules;
const shardNames = (n: number) =>
  Array.from({ length: n }, (_, i) => `rtftp-configs-${String(i).padStart(2, '0')}`);
const env = { POD_NAMESPACE: NAMESPACE, POD_NAME: 'pod-0' };

describe('chart: tenant boundaries', { skip }, () => {
  test('the operator writes ConfigMaps only under its shard names; create is the one unpinned write, and nothing is deleted', () => {
    for (const shards of [16, 4]) {
      const role = findObject(renderChart({ operator: { shards } }), 'Role', '-operator');
      const configMapRules = rulesOf(role).filter((r) => r.resources.includes('configmaps'));
      const CHANGES = ['update', 'patch', 'delete', 'deletecollection'];
      for (const r of configMapRules.filter((x) => x.verbs.some((v) => CHANGES.includes(v))))
        assert.deepEqual(r.resourceNames, shardNames(shards), JSON.stringify(r));
      assert.deepEqual(
        configMapRules.flatMap((r) => r.verbs).sort(),
        ['create', 'get', 'list', 'patch', 'update', 'watch'],
        'no delete, no deletecollection',
      );
      const deploy = findObject(renderChart({ operator: { shards } }), 'Deployment');
      const args = parseOperatorCli(containerOf(deploy, 'operator').args ?? [], env);
      assert.ok(args !== 'help' && args.mode === 'controller');
      assert.equal(args.shards, shards);
      const ds = findObject(renderChart({ operator: { shards } }), 'DaemonSet');
      const sync = parseOperatorCli(['sync', ...(containerOf(ds, 'config-sync').args ?? [])], env);
      assert.ok(sync !== 'help' && sync.mode === 'sync');
      assert.equal(
        sync.shards,
        shards,
        'the sidecar serves exactly the names the operator may write',
      );
    }
  });

  test('watching all namespaces adds only reads of BootNetworks and Namespaces, and BootNetwork status', () => {
    const own = renderChart({});
    assert.equal(
      rulesOf(findObject(own, 'Role', '-operator-bootclients')).some((r) =>
        r.resources.some((x) => x.startsWith('bootnetworks') || x === 'namespaces'),
      ),
      false,
      'its own namespace only: BootNetworks are not read at all',
    );
    const cluster = rulesOf(
      findObject(
        renderChart({ operator: { watchAllNamespaces: true } }),
        'ClusterRole',
        '-operator-bootclients',
      ),
    );
    const of = (resource: string) =>
      cluster.filter((r) => r.resources.includes(resource)).flatMap((r) => r.verbs);
    assert.deepEqual(of('bootnetworks'), ['get', 'list', 'watch']);
    assert.deepEqual(of('bootnetworks/status'), ['get', 'update', 'patch']);
    assert.deepEqual(of('namespaces'), ['get', 'list', 'watch']);
  });

  test('cluster CIDRs and the claim retention reach the operator; the dataplane refuses loopback, link-local and them by default', () => {
    const values = {
      operator: {
        clusterCIDRs: { services: ['10.43.0.0/16'], pods: ['10.42.0.0/16', 'fd00:42::/56'] },
        claimRetention: 0,
      },
      dataplane: { nbdDeny: ['192.0.2.0/24'] },
    };
    const objects = renderChart(values);
    const op = parseOperatorCli(
      containerOf(findObject(objects, 'Deployment'), 'operator').args ?? [],
      env,
    );
    assert.ok(op !== 'help' && op.mode === 'controller');
    assert.deepEqual(op.serviceCidrs.map(formatCidr), ['10.43.0.0/16']);
    assert.deepEqual(op.podCidrs.map(formatCidr), ['10.42.0.0/16', 'fd00:42::/56']);
    assert.equal(op.claimRetentionSeconds, 0);

    const tftp = containerOf(findObject(objects, 'DaemonSet'), 'tftp');
    const dp = parseDataplaneCli(tftp.args ?? [], {});
    assert.ok(dp?.nbdAllow, 'the chart always passes --nbd-allow');
    for (const refused of [
      '127.0.0.1',
      '::1',
      '169.254.169.254',
      'fe80::1',
      '10.43.0.1',
      '10.42.7.7',
      '192.0.2.5',
    ])
      assert.equal(dp.nbdAllow.checkAddress(refused, 10809).ok, false, refused);
    for (const allowed of ['10.20.0.7', '2001:db8::7'])
      assert.equal(dp.nbdAllow.checkAddress(allowed, 10809).ok, true, allowed);
  });

  test('the default values refuse the kubeadm cluster CIDRs; an empty or malformed nbdAllow fails the install', () => {
    const dp = parseDataplaneCli(
      containerOf(findObject(renderChart({}), 'DaemonSet'), 'tftp').args ?? [],
      {},
    );
    assert.equal(dp?.nbdAllow?.checkAddress('10.96.0.1', 443).ok, false);
    assert.equal(dp?.nbdAllow?.checkAddress('10.244.1.1', 10809).ok, false);
    for (const nbdAllow of [[], ['nbd.example'], ['10.0.0.0/8:port']]) {
      const run = helmWithValues(['template', 'boot'], { dataplane: { nbdAllow } });
      assert.notEqual(run.status, 0, `nbdAllow ${JSON.stringify(nbdAllow)} was accepted`);
      assert.match(run.stderr, /nbdAllow/);
    }
  });
});
