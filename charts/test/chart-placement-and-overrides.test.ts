/**
 * Chart values for day one on a bare-metal cluster: where the pods run, uid/gid and
 * securityContext overrides, extra volumes, the operator's PodDisruptionBudget, and the
 * Pod Security level NOTES asks the namespace for. Rendered by the real helm.
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import {
  NAMESPACE,
  VALUE_SETS,
  containerOf,
  findObject,
  helmMissingReason,
  podSpecOf,
  renderChart,
  renderNotes,
} from './helm.ts';
import { restrictedViolations } from './pod-security.ts';

const skip = helmMissingReason();
if (skip) console.log(`# skipped chart placement and override tests: ${skip}`);

const CONTROL_PLANE_TOLERATIONS = [
  { key: 'node-role.kubernetes.io/control-plane', operator: 'Exists', effect: 'NoSchedule' },
  { key: 'node-role.kubernetes.io/master', operator: 'Exists', effect: 'NoSchedule' },
];

const dataplane = (values: object) => findObject(renderChart(values), 'DaemonSet');
const operator = (values: object) => findObject(renderChart(values), 'Deployment');
const uidGid = (c: { securityContext?: { runAsUser?: number; runAsGroup?: number } }) => [
  c.securityContext?.runAsUser,
  c.securityContext?.runAsGroup,
];

describe('chart: placement and overrides', { skip }, () => {
  test('the dataplane runs on labelled boot nodes, control-plane nodes included', () => {
    const pod = podSpecOf(dataplane({}));
    assert.deepEqual(pod.nodeSelector, { 'rtftp.io/boot-server': 'true' });
    assert.deepEqual(pod.tolerations, CONTROL_PLANE_TOLERATIONS);
    const everywhere = podSpecOf(
      dataplane({ dataplane: { bootNodesOnly: false, tolerateControlPlane: false } }),
    );
    assert.equal(everywhere.nodeSelector, undefined);
    assert.equal(everywhere.tolerations, undefined);
    const rack = podSpecOf(
      dataplane({ dataplane: { nodeSelector: { 'example.net/rack': 'r1' } } }),
    );
    assert.deepEqual(rack.nodeSelector, {
      'example.net/rack': 'r1',
      'rtftp.io/boot-server': 'true',
    });
    // The operator is not pinned: it runs wherever the scheduler puts it.
    assert.equal(podSpecOf(operator({})).nodeSelector, undefined);
  });

  test('securityContext sets uid and gid of every non-root container, and the gid of a root dataplane', () => {
    const securityContext = { runAsUser: 2000, runAsGroup: 3000 };
    for (const [name, extra, tftp] of [
      ['fileCapability', {}, [2000, 3000]],
      ['highPort', VALUE_SETS.highPort!, [2000, 3000]],
      ['rootBind', VALUE_SETS.rootBind!, [0, 3000]],
    ] as const) {
      const objects = renderChart({ ...extra, securityContext });
      const ds = findObject(objects, 'DaemonSet');
      assert.deepEqual(uidGid(containerOf(ds, 'tftp')), tftp, name);
      assert.deepEqual(uidGid(containerOf(ds, 'config-sync')), [2000, 3000], name);
      const deploy = findObject(objects, 'Deployment');
      assert.deepEqual(uidGid(containerOf(deploy, 'operator')), [2000, 3000], name);
      assert.deepEqual(restrictedViolations(podSpecOf(deploy)), [], name);
    }
  });

  test('pod and container securityContext overrides merge over what the chart renders', () => {
    const seLinux = { seLinuxOptions: { type: 'spc_t' } };
    const ds = dataplane({
      dataplane: {
        kvm: { mode: 'hostPath', groupId: 108 },
        podSecurityContext: { supplementalGroups: [5000], fsGroupChangePolicy: 'OnRootMismatch' },
        containerSecurityContext: seLinux,
        configSync: { containerSecurityContext: { readOnlyRootFilesystem: false } },
      },
    });
    const pod = podSpecOf(ds);
    assert.deepEqual(pod.securityContext, {
      seccompProfile: { type: 'RuntimeDefault' },
      supplementalGroups: [5000, 108],
      fsGroupChangePolicy: 'OnRootMismatch',
    });
    const tftp = containerOf(ds, 'tftp').securityContext as Record<string, unknown>;
    assert.deepEqual(tftp.seLinuxOptions, seLinux.seLinuxOptions);
    assert.deepEqual(tftp.capabilities, { drop: ['ALL'], add: ['NET_BIND_SERVICE'] }, 'kept');
    assert.equal(containerOf(ds, 'config-sync').securityContext?.readOnlyRootFilesystem, false);

    const deploy = operator({
      operator: {
        podSecurityContext: { fsGroup: 4000 },
        containerSecurityContext: seLinux,
      },
    });
    assert.equal((podSpecOf(deploy).securityContext as { fsGroup?: number }).fsGroup, 4000);
    assert.deepEqual(
      (containerOf(deploy, 'operator').securityContext as Record<string, unknown>).seLinuxOptions,
      seLinux.seLinuxOptions,
    );
    assert.deepEqual(restrictedViolations(podSpecOf(deploy)), []);
  });

  test('extraVolumes and extraVolumeMounts reach the tftp and operator containers', () => {
    const ds = dataplane(VALUE_SETS.bootNetwork!);
    assert.deepEqual(
      podSpecOf(ds).volumes?.find((v) => v.name === 'nbd-sockets'),
      { name: 'nbd-sockets', hostPath: { path: '/run/nbd', type: 'Directory' } },
    );
    assert.deepEqual(
      containerOf(ds, 'tftp').volumeMounts?.find((m) => m.name === 'nbd-sockets'),
      { name: 'nbd-sockets', mountPath: '/run/nbd', readOnly: true },
    );
    assert.equal(
      containerOf(ds, 'config-sync').volumeMounts?.some((m) => m.name === 'nbd-sockets'),
      false,
      'only the tftp container mounts them',
    );
    const deploy = operator({
      operator: {
        extraVolumes: [{ name: 'ca', configMap: { name: 'corp-ca' } }],
        extraVolumeMounts: [{ name: 'ca', mountPath: '/etc/corp-ca', readOnly: true }],
      },
    });
    assert.ok(podSpecOf(deploy).volumes?.some((v) => v.name === 'ca'));
    assert.ok(containerOf(deploy, 'operator').volumeMounts?.some((m) => m.name === 'ca'));
  });

  test('a PodDisruptionBudget keeps one operator replica through drains when there are two', () => {
    const pdbs = (values: object) =>
      renderChart(values).filter((o) => o.kind === 'PodDisruptionBudget');
    assert.deepEqual(pdbs({}), [], 'one replica: a PDB would block every drain');
    const [pdb, ...more] = pdbs({ operator: { replicas: 2 } });
    assert.equal(more.length, 0);
    const spec = (pdb as unknown as { spec: Record<string, unknown> }).spec;
    assert.deepEqual(spec, {
      minAvailable: 1,
      selector: {
        matchLabels: {
          'app.kubernetes.io/name': 'rtftp',
          'app.kubernetes.io/instance': 'boot',
          'app.kubernetes.io/component': 'operator',
        },
      },
    });
    assert.deepEqual(
      pdbs({ operator: { replicas: 2, podDisruptionBudget: { enabled: false } } }),
      [],
    );
    assert.deepEqual(pdbs({ operator: { replicas: 2, enabled: false } }), []);
  });

  test('NOTES name the Pod Security level the namespace needs and the boot-node label', () => {
    const notes = renderNotes();
    assert.match(notes, /needs the "privileged" level/);
    assert.match(
      notes,
      new RegExp(
        `kubectl label namespace ${NAMESPACE} pod-security.kubernetes.io/enforce=privileged`,
      ),
    );
    assert.match(notes, /kubectl label node BOOT_NODE rtftp\.io\/boot-server=true/);
    const operatorOnly = renderNotes({ dataplane: { enabled: false } });
    assert.match(operatorOnly, /pod-security\.kubernetes\.io\/enforce=restricted/);
    assert.doesNotMatch(operatorOnly, /privileged/);
    assert.match(
      renderNotes(VALUE_SETS.bootNetwork!),
      /It serves on 192\.168\.1\.0\/24,!192\.168\.1\.1\./,
    );
  });
});
