import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import {
  VALUE_SETS,
  containerOf,
  findObject,
  helmMissingReason,
  podSpecOf,
  renderChart,
  type K8sObject,
} from './helm.ts';
import {
  baselineViolations,
  restrictedContainerViolations,
  restrictedViolations,
} from './pod-security.ts';

const skip = helmMissingReason();
if (skip) console.log(`# skipped chart security tests: ${skip}`);

const TOKEN_PATH = '/var/run/secrets/kubernetes.io/serviceaccount';

interface Rule {
  apiGroups: string[];
  resources: string[];
  verbs: string[];
  resourceNames?: string[];
}
const rulesOf = (obj: K8sObject) => (obj as unknown as { rules: Rule[] }).rules;

describe('chart security', { skip }, () => {
  test('the operator pod meets Pod Security "restricted" in every values set', () => {
    for (const [name, values] of Object.entries(VALUE_SETS)) {
      const objects = renderChart(values);
      const deploy = objects.find((o) => o.kind === 'Deployment');
      if (!deploy) continue;
      assert.deepEqual(restrictedViolations(podSpecOf(deploy)), [], name);
      assert.equal(
        containerOf(deploy, 'operator').securityContext?.readOnlyRootFilesystem,
        true,
        name,
      );
    }
  });

  test('port 69 with fileCapability: non-root, only NET_BIND_SERVICE, escalation allowed for the file capability', () => {
    const tftp = containerOf(findObject(renderChart({}), 'DaemonSet'), 'tftp');
    assert.deepEqual(tftp.command, ['/usr/bin/tini', '--', 'node', '/app/bin/rtftp.js']);
    assert.deepEqual(tftp.securityContext, {
      runAsNonRoot: true,
      runAsUser: 10001,
      runAsGroup: 10001,
      allowPrivilegeEscalation: true,
      readOnlyRootFilesystem: true,
      capabilities: { drop: ['ALL'], add: ['NET_BIND_SERVICE'] },
      seccompProfile: { type: 'RuntimeDefault' },
    });
  });

  test('port 69 with the root strategy: uid 0, every capability dropped but NET_BIND_SERVICE, no escalation', () => {
    const tftp = containerOf(findObject(renderChart(VALUE_SETS.rootBind!), 'DaemonSet'), 'tftp');
    assert.deepEqual(tftp.command, ['/usr/bin/tini', '--', 'node', '/app/bin/rtftp.js']);
    assert.deepEqual(tftp.securityContext?.capabilities, {
      drop: ['ALL'],
      add: ['NET_BIND_SERVICE'],
    });
    assert.equal(tftp.securityContext?.runAsUser, 0);
    assert.equal(tftp.securityContext?.allowPrivilegeEscalation, false);
    assert.equal(tftp.securityContext?.readOnlyRootFilesystem, true);
  });

  // The image's node carries the file capability: it can only be executed with
  // NET_BIND_SERVICE in the bounding set, and no_new_privs leaves the process none
  // (bind-privileges.test.ts and e2e/containers show both on a real kernel).
  test('a port of 1024 or more gets no usable capability, whatever the bind strategy', () => {
    for (const bindStrategy of ['fileCapability', 'root']) {
      const ds = findObject(renderChart({ dataplane: { port: 6969, bindStrategy } }), 'DaemonSet');
      const tftp = containerOf(ds, 'tftp');
      assert.deepEqual(tftp.command, ['/usr/bin/tini', '--', 'node', '/app/bin/rtftp.js']);
      // Everything "restricted" asks of a container holds; only the host network and the
      // hostPaths (the root, the sidecar's node snapshot) keep the pod out of that level.
      assert.deepEqual(
        restrictedContainerViolations(tftp, podSpecOf(ds).securityContext),
        [],
        bindStrategy,
      );
      assert.deepEqual(tftp.securityContext?.capabilities?.add, ['NET_BIND_SERVICE']);
      assert.equal(tftp.securityContext?.allowPrivilegeEscalation, false, bindStrategy);
      assert.equal(tftp.securityContext?.runAsUser, 10001, bindStrategy);
      assert.deepEqual(baselineViolations(podSpecOf(ds)), [
        'hostNetwork=true',
        'volume root is a hostPath',
        'volume node-snapshot is a hostPath',
      ]);
    }
  });

  test("no dataplane container is privileged, adds more than NET_BIND_SERVICE, or writes outside emptyDirs and the sidecar's own node-snapshot hostPath", () => {
    for (const [name, values] of Object.entries(VALUE_SETS)) {
      const ds = findObject(renderChart(values), 'DaemonSet');
      const pod = podSpecOf(ds);
      const initContainers = (pod.initContainers ?? []) as typeof pod.containers;
      for (const c of [...pod.containers, ...initContainers]) {
        const init = initContainers.includes(c);
        assert.notEqual(c.securityContext?.privileged, true, `${name}/${c.name}`);
        assert.deepEqual(c.securityContext?.capabilities?.drop, ['ALL'], `${name}/${c.name}`);
        // The one init container chowns the node-snapshot directory: CHOWN, nothing else.
        const added = c.securityContext?.capabilities?.add ?? [];
        const allowed = init ? 'CHOWN' : 'NET_BIND_SERVICE';
        assert.ok(
          added.every((cap) => cap === allowed),
          `${name}/${c.name}: ${added.join()}`,
        );
        assert.equal(c.securityContext?.readOnlyRootFilesystem, true, `${name}/${c.name}`);
        if (init)
          assert.equal(c.securityContext?.allowPrivilegeEscalation, false, `${name}/${c.name}`);
        for (const m of c.volumeMounts ?? []) {
          if (m.readOnly || m.mountPath === '/dev/kvm') continue;
          const volume = pod.volumes?.find((v) => v.name === m.name);
          const ownHostPath = m.name === 'node-snapshot' && (init || c.name === 'config-sync');
          assert.ok(
            volume && ('emptyDir' in volume || ownHostPath),
            `${name}/${c.name}: ${m.mountPath} is writable and not an emptyDir`,
          );
        }
      }
    }
  });

  test('the TFTP container gets no Kubernetes credentials; only the config-sync sidecar mounts a token', () => {
    for (const [name, values] of Object.entries(VALUE_SETS)) {
      const ds = findObject(renderChart(values), 'DaemonSet');
      const pod = podSpecOf(ds);
      assert.equal(pod.automountServiceAccountToken, false, name);
      const tftp = containerOf(ds, 'tftp');
      assert.equal(
        tftp.volumeMounts?.some((m) => m.mountPath.startsWith('/var/run/secrets')),
        false,
        name,
      );
      const sync = pod.containers.find((c) => c.name === 'config-sync');
      if (!sync) continue;
      assert.deepEqual(restrictedContainerViolations(sync, pod.securityContext), [], name);
      const tokenMount = sync.volumeMounts?.find((m) => m.mountPath === TOKEN_PATH);
      assert.ok(tokenMount?.readOnly, name);
      const volume = pod.volumes?.find((v) => v.name === tokenMount.name) as {
        projected?: { sources: object[] };
      };
      assert.ok(
        volume.projected?.sources.some((s) => 'serviceAccountToken' in s),
        name,
      );
    }
  });

  test('RBAC: the sync sidecar reads ConfigMaps of one namespace, the operator gets exactly what it needs', () => {
    const objects = renderChart({});
    assert.equal(
      objects.some((o) => o.kind.startsWith('Cluster')),
      false,
      'no cluster-wide RBAC by default',
    );
    for (const role of objects.filter((o) => o.kind === 'Role' || o.kind === 'ClusterRole')) {
      for (const rule of rulesOf(role)) {
        for (const field of [rule.apiGroups, rule.resources, rule.verbs])
          assert.ok(!field.includes('*'), role.metadata.name);
        assert.ok(!rule.resources.includes('secrets'), role.metadata.name);
      }
    }
    // ConfigMaps: read; Leases: its node's report (create, patch: chart-node-snapshot.test.ts).
    assert.deepEqual(rulesOf(findObject(objects, 'Role', '-dataplane-config-sync')), [
      { apiGroups: [''], resources: ['configmaps'], verbs: ['get', 'list', 'watch'] },
      { apiGroups: ['coordination.k8s.io'], resources: ['leases'], verbs: ['create', 'patch'] },
    ]);
    assert.deepEqual(rulesOf(findObject(objects, 'Role', '-operator-bootclients')), [
      { apiGroups: ['rtftp.io'], resources: ['bootclients'], verbs: ['get', 'list', 'watch'] },
      {
        apiGroups: ['rtftp.io'],
        resources: ['bootclients/status'],
        verbs: ['get', 'update', 'patch'],
      },
      { apiGroups: ['', 'events.k8s.io'], resources: ['events'], verbs: ['create', 'patch'] },
    ]);
    // ConfigMaps: reads, and writes pinned to the shard names (chart-tenancy.test.ts).
    assert.deepEqual(
      rulesOf(findObject(objects, 'Role', '-operator')).map((r) => r.resources[0]),
      ['configmaps', 'configmaps', 'leases'],
    );
    const cluster = renderChart({ operator: { watchAllNamespaces: true } });
    assert.deepEqual(
      cluster
        .filter((o) => o.kind.startsWith('Cluster'))
        .map((o) => `${o.kind}/${o.metadata.name}`),
      [
        'ClusterRole/boot-rtftp-operator-bootclients',
        'ClusterRoleBinding/boot-rtftp-operator-bootclients',
      ],
    );
  });
});
