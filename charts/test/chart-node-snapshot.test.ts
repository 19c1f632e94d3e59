/**
 * The config-sync sidecar's node snapshot (a hostPath) and its report Lease, as the chart
 * renders them: values, the schema's refusals, the RBAC, the downward-API environment, and
 * the init container that gives the directory to the sidecar, run on the real kernel with
 * exactly the identity and capabilities it is rendered with.
 */
import { test, describe, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseCli as parseOperatorCli } from '../../operator/src/cli.ts';
import {
  VALUE_SETS,
  argsOf,
  containerOf,
  envOf,
  findObject,
  helmMissingReason,
  helmWithValues,
  podSpecOf,
  renderChart,
  renderNotes,
  type Container,
  type K8sObject,
} from './helm.ts';

const skip = helmMissingReason();
if (skip) console.log(`# skipped chart node-snapshot tests: ${skip}`);

const SNAPSHOT_MOUNT = '/var/lib/rtftp/snapshot';
const daemonSet = (values: object) => findObject(renderChart(values), 'DaemonSet');
const initOf = (ds: K8sObject): Container | undefined =>
  (podSpecOf(ds).initContainers as Container[] | undefined)?.find(
    (c) => c.name === 'node-snapshot-dir',
  );
const syncArgs = (ds: K8sObject) => {
  const sync = containerOf(ds, 'config-sync');
  const args = parseOperatorCli(['sync', ...argsOf(sync)], envOf(sync));
  assert.ok(args !== 'help' && args.mode === 'sync');
  return args;
};
const rules = (values: object) =>
  (
    findObject(renderChart(values), 'Role', '-dataplane-config-sync') as unknown as {
      rules: { apiGroups: string[]; resources: string[]; verbs: string[] }[];
    }
  ).rules;

describe('config-sync: node snapshot and report Lease', { skip }, () => {
  test('by default: a DirectoryOrCreate hostPath, mounted only in the sidecar and its init container', () => {
    const ds = daemonSet({});
    const pod = podSpecOf(ds);
    assert.deepEqual(
      pod.volumes?.find((v) => v.name === 'node-snapshot'),
      {
        name: 'node-snapshot',
        hostPath: { path: '/var/lib/rtftp/configs', type: 'DirectoryOrCreate' },
      },
    );
    assert.deepEqual(
      containerOf(ds, 'config-sync').volumeMounts?.find((m) => m.name === 'node-snapshot'),
      { name: 'node-snapshot', mountPath: SNAPSHOT_MOUNT },
    );
    assert.equal(
      containerOf(ds, 'tftp').volumeMounts?.some((m) => m.name === 'node-snapshot'),
      false,
      'the TFTP container never sees the node copy',
    );
    assert.equal(syncArgs(ds).snapshotDir, SNAPSHOT_MOUNT);
    const init = initOf(ds)!;
    assert.deepEqual(init.command, ['chown', '10001:10001', SNAPSHOT_MOUNT]);
    assert.deepEqual(init.volumeMounts, [{ name: 'node-snapshot', mountPath: SNAPSHOT_MOUNT }]);
    assert.deepEqual(init.securityContext, {
      runAsNonRoot: false,
      runAsUser: 0,
      runAsGroup: 0,
      allowPrivilegeEscalation: false,
      readOnlyRootFilesystem: true,
      capabilities: { drop: ['ALL'], add: ['CHOWN'] },
      seccompProfile: { type: 'RuntimeDefault' },
    });
  });

  test("the init container chowns to the sidecar's own uid, whatever overrides it", () => {
    assert.deepEqual(initOf(daemonSet(VALUE_SETS.bootNetwork!))!.command?.[1], '2000:2000');
    const own = daemonSet({
      dataplane: {
        configSync: { containerSecurityContext: { runAsUser: 3000, runAsGroup: 3001 } },
      },
    });
    assert.equal(initOf(own)!.command?.[1], '3000:3001');
    assert.equal(containerOf(own, 'config-sync').securityContext?.runAsUser, 3000);
  });

  test('hostPath and prepare: another path, no init container, or no node copy at all', () => {
    const moved = daemonSet({
      dataplane: {
        configSync: { nodeSnapshot: { hostPath: '/data/rtftp-snap', prepare: 'none' } },
      },
    });
    assert.equal(initOf(moved), undefined);
    assert.deepEqual(podSpecOf(moved).volumes?.find((v) => v.name === 'node-snapshot')?.hostPath, {
      path: '/data/rtftp-snap',
      type: 'DirectoryOrCreate',
    });
    assert.equal(syncArgs(moved).snapshotDir, SNAPSHOT_MOUNT);
    const off = daemonSet({ dataplane: { configSync: { nodeSnapshot: { enabled: false } } } });
    assert.equal(initOf(off), undefined);
    assert.equal(
      podSpecOf(off).volumes?.some((v) => v.name === 'node-snapshot'),
      false,
    );
    assert.equal(syncArgs(off).snapshotDir, '');
    const noSync = daemonSet(VALUE_SETS.dataplaneOnly!);
    assert.equal(initOf(noSync), undefined);
    assert.equal(
      podSpecOf(noSync).volumes?.some((v) => v.name === 'node-snapshot'),
      false,
    );
  });

  test('the schema refuses a hostPath the init container must not chown', () => {
    for (const hostPath of ['/', '/var', 'var/lib/rtftp', '/var/lib/../../etc', '/var/./x']) {
      const run = helmWithValues(['template', 'boot'], {
        dataplane: { configSync: { nodeSnapshot: { hostPath } } },
      });
      assert.notEqual(run.status, 0, hostPath);
      assert.match(run.stderr, /hostPath/, hostPath);
    }
    const bad = helmWithValues(['template', 'boot'], {
      dataplane: { configSync: { nodeSnapshot: { prepare: 'mkdir' } } },
    });
    assert.notEqual(bad.status, 0);
  });

  test('the report: node and pod names from the downward API, timing flags, Lease RBAC', () => {
    const ds = daemonSet({
      dataplane: { configSync: { report: { intervalSeconds: 5, leaseDurationSeconds: 20 } } },
    });
    const sync = containerOf(ds, 'config-sync');
    const env = Object.fromEntries(
      (sync.env ?? []).map((e) => [e.name, e.valueFrom?.fieldRef?.fieldPath]),
    );
    assert.equal(env.NODE_NAME, 'spec.nodeName');
    assert.equal(env.POD_NAME, 'metadata.name');
    const args = syncArgs(ds);
    assert.deepEqual(
      [args.nodeName, args.identity, args.reportIntervalMs, args.reportLeaseDurationSeconds],
      ['pod-0', 'pod-0', 5000, 20],
    );
    assert.deepEqual(rules({}).at(-1), {
      apiGroups: ['coordination.k8s.io'],
      resources: ['leases'],
      verbs: ['create', 'patch'],
    });
    const off = daemonSet({ dataplane: { configSync: { report: { enabled: false } } } });
    const offSync = containerOf(off, 'config-sync');
    assert.equal(
      offSync.env?.some((e) => e.name === 'NODE_NAME'),
      false,
    );
    assert.equal(syncArgs(off).nodeName, '');
    assert.deepEqual(
      rules({ dataplane: { configSync: { report: { enabled: false } } } }).map((r) => r.resources),
      [['configmaps']],
    );
    const tooShort = helmWithValues(['template', 'boot'], {
      dataplane: { configSync: { report: { intervalSeconds: 30, leaseDurationSeconds: 40 } } },
    });
    assert.notEqual(tooShort.status, 0);
    assert.match(tooShort.stderr, /at least twice intervalSeconds/);
  });

  test('NOTES show how to wait for a BootClient to be Ready, when nodes report', () => {
    assert.match(renderNotes(), /wait --for=condition=Ready bootclient\/node-01/);
    assert.doesNotMatch(
      renderNotes({ dataplane: { configSync: { report: { enabled: false } } } }),
      /condition=Ready/,
    );
  });

  test('the operator can read the reports: Leases of its namespace, read', () => {
    const role = findObject(renderChart({}), 'Role', '-operator') as unknown as {
      rules: { resources: string[]; verbs: string[] }[];
    };
    const leases = role.rules.find((r) => r.resources.includes('leases'));
    assert.ok(leases && ['get', 'list', 'watch'].every((v) => leases.verbs.includes(v)));
  });
});

function kernelMissingReason(): string | undefined {
  if (skip) return skip;
  if (process.getuid?.() !== 0) return 'needs root (setpriv with another uid and capabilities)';
  if (spawnSync('sh', ['-c', 'command -v setpriv']).status !== 0) return 'setpriv is not installed';
  return undefined;
}
const kernelSkip = kernelMissingReason();
if (kernelSkip)
  console.log(`# skipped the node-snapshot init container on the kernel: ${kernelSkip}`);

describe('the init container on the real kernel', { skip: kernelSkip }, () => {
  const work = kernelSkip ? '' : mkdtempSync(join(tmpdir(), 'rtftp-node-snapshot-init-'));
  after(() => {
    if (work) rmSync(work, { recursive: true, force: true });
  });

  /** Runs argv as the container's securityContext says: its uid/gid, exactly its capabilities. */
  function runAs(
    c: Container,
    argv: string[],
    capabilities = c.securityContext?.capabilities?.add,
  ) {
    const sc = c.securityContext ?? {};
    const bounding = ['-all', ...(capabilities ?? []).map((x) => `+${x.toLowerCase()}`)].join(',');
    return spawnSync(
      'setpriv',
      [
        '--reuid',
        String(sc.runAsUser),
        '--regid',
        String(sc.runAsGroup),
        '--clear-groups',
        '--inh-caps=-all',
        `--bounding-set=${bounding}`,
        ...(sc.allowPrivilegeEscalation === false ? ['--no-new-privs'] : []),
        ...argv,
      ],
      { encoding: 'utf8' },
    );
  }

  test('with CAP_CHOWN alone it gives the directory to the sidecar, which can then write its snapshot', () => {
    const ds = daemonSet({});
    const init = initOf(ds)!;
    // What kubelet's DirectoryOrCreate leaves: root:root 0755.
    const dir = join(work, 'var/lib/rtftp/configs');
    chmodSync(work, 0o755); // mkdtemp's 0700 would keep uid 10001 out of the whole tree
    mkdirSync(dir, { recursive: true, mode: 0o755 });
    const command = init.command!.map((a) => (a === SNAPSHOT_MOUNT ? dir : a));
    const sync = containerOf(ds, 'config-sync');
    const write = ['sh', '-c', `printf x > ${dir}/probe && mv ${dir}/probe ${dir}/snapshot.json`];
    // Before: the sidecar's uid cannot write there.
    assert.notEqual(runAs(sync, write).status, 0);
    // Without CHOWN the same root process is refused: the capability is what it needs.
    const refused = runAs(init, command, []);
    assert.notEqual(refused.status, 0);
    assert.match(refused.stderr, /Operation not permitted/);
    const ran = runAs(init, command);
    assert.equal(ran.status, 0, ran.stderr);
    const st = statSync(dir);
    assert.deepEqual([st.uid, st.gid], [10001, 10001]);
    assert.equal(st.mode & 0o777, 0o755, 'the mode is left alone');
    // Now the sidecar (no capability at all) writes and renames its snapshot there.
    const wrote = runAs(sync, write);
    assert.equal(wrote.status, 0, wrote.stderr);
    assert.equal(statSync(join(dir, 'snapshot.json')).uid, 10001);
    // Run again (every pod start): still fine, and nothing inside is touched.
    writeFileSync(join(dir, 'not-mine'), '');
    assert.equal(runAs(init, command).status, 0);
    assert.equal(statSync(join(dir, 'not-mine')).uid, 0);
    assert.equal(statSync(join(dir, 'snapshot.json')).uid, 10001);
  });
});
