import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  NAMESPACE,
  RELEASE,
  VALUE_SETS,
  chartDir,
  findObject,
  helmMissingReason,
  helmWithValues,
  renderChart,
  podSpecOf,
  containerOf,
  renderNotes,
  type K8sObject,
} from './helm.ts';
import { schemaErrors } from './k8s-schemas.ts';

const skip = helmMissingReason();
if (skip) console.log(`# skipped chart rendering tests: ${skip}`);

function volumeOf(obj: K8sObject, name: string) {
  return podSpecOf(obj).volumes?.find((v) => v.name === name);
}

describe('chart renders', { skip }, () => {
  test('helm lint passes for every values set', () => {
    for (const [name, values] of Object.entries(VALUE_SETS)) {
      const run = helmWithValues(['lint', '--strict'], values);
      assert.equal(run.status, 0, `${name}: ${run.stdout}\n${run.stderr}`);
    }
  });

  for (const [name, values] of Object.entries(VALUE_SETS)) {
    test(`every object rendered with values "${name}" is valid against the Kubernetes schemas`, () => {
      const objects = renderChart(values, ['--include-crds']);
      assert.ok(objects.length >= 2, `only ${objects.length} objects`);
      assert.deepEqual(objects.flatMap(schemaErrors), []);
      for (const obj of objects.filter(
        (o) => o.kind !== 'CustomResourceDefinition' && !o.kind.startsWith('Cluster'),
      )) {
        assert.ok(obj.metadata.namespace, `${obj.kind}/${obj.metadata.name} has no namespace`);
      }
    });
  }

  test('the dataplane runs on the host network with the configured UDP port, root and config dir', () => {
    for (const port of [69, 6969]) {
      const ds = findObject(renderChart({ dataplane: { port } }), 'DaemonSet', '-dataplane');
      const pod = podSpecOf(ds);
      assert.equal(pod.hostNetwork, true);
      assert.equal(pod.dnsPolicy, 'ClusterFirstWithHostNet');
      const tftp = containerOf(ds, 'tftp');
      assert.ok(tftp.args?.includes(`--port=${port}`), String(tftp.args));
      assert.deepEqual(
        tftp.ports?.find((p) => p.name === 'tftp'),
        { name: 'tftp', containerPort: port, protocol: 'UDP' },
      );
      assert.ok(tftp.args?.includes('--root=/srv/rtftp'));
      assert.ok(tftp.args?.includes('--config-dir=/run/rtftp/configs'));
      assert.deepEqual(volumeOf(ds, 'root'), {
        name: 'root',
        hostPath: { path: '/srv/rtftp', type: 'DirectoryOrCreate' },
      });
    }
  });

  test('the default listens everywhere; listen addresses and the node IP are passed when set', () => {
    const plain = containerOf(findObject(renderChart({}), 'DaemonSet'), 'tftp');
    assert.equal(
      plain.args?.some((a) => a.startsWith('--listen=')),
      false,
    );
    const objects = renderChart(VALUE_SETS.pinned!);
    const ds = findObject(objects, 'DaemonSet');
    const tftp = containerOf(ds, 'tftp');
    assert.ok(tftp.args?.includes('--listen=192.168.10.1,$(HOST_IP)'), String(tftp.args));
    assert.equal(
      tftp.env?.find((e) => e.name === 'HOST_IP')?.valueFrom?.fieldRef?.fieldPath,
      'status.hostIP',
    );
    assert.deepEqual(podSpecOf(ds).nodeSelector, {
      'example.net/rack': 'r1',
      'rtftp.io/boot-server': 'true',
    });
    assert.equal(podSpecOf(ds).tolerations?.length, 3, 'two control-plane taints and one own');
    const deploy = findObject(objects, 'Deployment', '-operator');
    assert.equal((deploy as unknown as { spec: { replicas: number } }).spec.replicas, 2);
  });

  test('PVC values mount the existing claim read-only instead of a hostPath', () => {
    const ds = findObject(renderChart(VALUE_SETS.pvc!), 'DaemonSet');
    assert.deepEqual(volumeOf(ds, 'root'), {
      name: 'root',
      persistentVolumeClaim: { claimName: 'tftp-files', readOnly: true },
    });
    const mount = containerOf(ds, 'tftp').volumeMounts?.find((m) => m.name === 'root');
    assert.deepEqual(mount, { name: 'root', mountPath: '/srv/rtftp', readOnly: true });
  });

  test('kvm modes: none adds nothing, devicePlugin requests the resource, hostPath mounts /dev/kvm', () => {
    const none = findObject(renderChart({}), 'DaemonSet');
    assert.equal(volumeOf(none, 'kvm'), undefined);
    assert.equal(
      containerOf(none, 'tftp').resources?.limits?.['devices.kubevirt.io/kvm'],
      undefined,
    );

    const plugin = findObject(renderChart(VALUE_SETS.kvmDevicePlugin!), 'DaemonSet');
    assert.equal(containerOf(plugin, 'tftp').resources?.limits?.['devices.kubevirt.io/kvm'], '1');
    assert.equal(containerOf(plugin, 'tftp').resources?.limits?.memory, '4Gi');
    assert.equal(volumeOf(plugin, 'kvm'), undefined);
    assert.deepEqual(podSpecOf(plugin).securityContext?.supplementalGroups, [108]);

    const host = findObject(renderChart(VALUE_SETS.kvmHostPath!), 'DaemonSet');
    assert.deepEqual(volumeOf(host, 'kvm'), {
      name: 'kvm',
      hostPath: { path: '/dev/kvm', type: 'CharDevice' },
    });
    assert.ok(
      containerOf(host, 'tftp').volumeMounts?.some(
        (m) => m.name === 'kvm' && m.mountPath === '/dev/kvm',
      ),
    );
    assert.deepEqual(podSpecOf(host).securityContext?.supplementalGroups, [108]);
  });

  test('monitoring values render monitors, the alert rules and the dashboard for the Grafana sidecar', () => {
    const objects = renderChart(VALUE_SETS.monitoring!);
    const monitors = objects.filter((o) => o.kind === 'ServiceMonitor');
    assert.deepEqual(monitors.map((m) => m.metadata.name).sort(), [
      `${RELEASE}-rtftp-dataplane`,
      `${RELEASE}-rtftp-operator`,
    ]);
    for (const m of monitors) assert.equal(m.metadata.labels?.release, 'kube-prometheus-stack');
    const endpoints = (m: K8sObject) =>
      (m as unknown as { spec: { endpoints: { port: string }[] } }).spec.endpoints;
    assert.deepEqual(
      endpoints(findObject(objects, 'ServiceMonitor', '-dataplane')).map((e) => e.port),
      ['metrics', 'sync-metrics'],
    );
    assert.equal(objects.filter((o) => o.kind === 'Service').length, 2);
    findObject(objects, 'PrometheusRule');
    const dashboard = findObject(objects, 'ConfigMap', '-dashboard');
    assert.equal(dashboard.metadata.labels?.grafana_dashboard, '1');
    const json = JSON.parse(
      (dashboard as unknown as { data: Record<string, string> }).data['rtftp.json']!,
    );
    assert.equal(json.uid, 'rtftp-overview');
    assert.equal(
      (dashboard as unknown as { data: Record<string, string> }).data['rtftp.json'],
      readFileSync(join(chartDir, 'dashboards/rtftp.json'), 'utf8').trimEnd(),
    );

    const pods = renderChart(VALUE_SETS.podMonitor!);
    assert.equal(pods.filter((o) => o.kind === 'PodMonitor').length, 2);
    assert.equal(pods.filter((o) => o.kind === 'Service' || o.kind === 'ServiceMonitor').length, 0);
  });

  test('nothing for Prometheus or Grafana is rendered by default', () => {
    const kinds = new Set(renderChart({}).map((o) => o.kind));
    for (const kind of ['ServiceMonitor', 'PodMonitor', 'PrometheusRule', 'ConfigMap', 'Service']) {
      assert.equal(kinds.has(kind), false, kind);
    }
  });

  test('a dataplane-only install renders no operator, no sync sidecar and no service account', () => {
    const objects = renderChart(VALUE_SETS.dataplaneOnly!).filter(
      (o) => o.kind !== 'CustomResourceDefinition',
    );
    assert.deepEqual(
      objects.map((o) => o.kind),
      ['DaemonSet'],
    );
    assert.deepEqual(
      podSpecOf(objects[0]!).containers.map((c) => c.name),
      ['tftp'],
    );
  });

  test('NOTES tell the user how to check the install works', () => {
    const notes = renderNotes();
    assert.match(notes, new RegExp(`kubectl -n ${NAMESPACE} get bootclients`));
    assert.match(notes, /tftp -v NODE_IP 69 -c get pxelinux\.0/);
    assert.match(notes, new RegExp(`rollout status daemonset/${RELEASE}-rtftp-dataplane`));
  });
});
