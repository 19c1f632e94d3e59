/**
 * Where the dataplane pod listens, as the chart renders it and the real command-line
 * parsers read it: the boot network by CIDR, /status exposure, the snapshot gate, and the
 * kubelet's probes for every listen setting.
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { parseCli as parseDataplaneCli } from '../../dataplane/src/cli.ts';
import {
  DEFAULT_SKIP_INTERFACES,
  formatListenSelector as text,
} from '../../dataplane/src/tftp/listen-spec.ts';
import { parseCli as parseOperatorCli } from '../../operator/src/cli.ts';
import {
  VALUE_SETS,
  argsOf,
  containerOf,
  envOf,
  findObject,
  helmMissingReason,
  podSpecOf,
  renderChart,
  type Container,
} from './helm.ts';

const skip = helmMissingReason();
if (skip) console.log(`# skipped chart listen and probe tests: ${skip}`);

const dataplaneOf = (values: object) => {
  const ds = findObject(renderChart(values), 'DaemonSet');
  const tftp = containerOf(ds, 'tftp');
  const options = parseDataplaneCli(argsOf(tftp), envOf(tftp));
  assert.ok(options);
  return { ds, tftp, options };
};

/**
 * Where a container serves HTTP on every address of both families, by port number, as
 * its real parser reads the rendered arguments: the probes may only point there.
 */
function portsOnEveryAddress(container: Container): number[] {
  if (container.name === 'tftp') {
    const o = parseDataplaneCli(argsOf(container), envOf(container))!;
    return [...(o.metricsListen === '' ? [o.metricsPort] : []), o.probePort].filter(Boolean);
  }
  const o = parseOperatorCli(['sync', ...argsOf(container)], envOf(container));
  assert.ok(o !== 'help');
  return [...(o.metricsListen === '' ? [o.metricsPort] : []), o.probePort].filter(Boolean);
}

describe('chart: listening and probes', { skip }, () => {
  test('by default the dataplane listens on every address but virtual interfaces', () => {
    const { tftp, options } = dataplaneOf({});
    assert.equal(
      tftp.args?.some((a) => a.startsWith('--listen=')),
      false,
    );
    assert.deepEqual(options.listen.include.map(text), ['all']);
    assert.deepEqual(options.listen.skipInterfaces, DEFAULT_SKIP_INTERFACES);
  });

  test('the boot network by CIDR, exclusions, the skip list and status-allow reach the dataplane', () => {
    const { options } = dataplaneOf(VALUE_SETS.bootNetwork!);
    assert.deepEqual(options.listen.include.map(text), ['192.168.1.0/24']);
    assert.deepEqual(options.listen.exclude.map(text), ['192.168.1.1']);
    assert.equal(options.statusAllow.toString(), '10.20.0.0/16');
    for (const [skipInterfaces, expected] of [
      [[], []],
      [
        ['lo', 'eth0'],
        ['lo', 'eth0'],
      ],
    ] as const) {
      const o = dataplaneOf({ dataplane: { listenSkipInterfaces: skipInterfaces } }).options;
      assert.deepEqual(o.listen.skipInterfaces, expected);
    }
    assert.equal(dataplaneOf({}).options.statusAllow.size, 0, '/status: loopback only');
  });

  test('the dataplane waits for a complete config snapshot when the sync sidecar feeds it', () => {
    assert.equal(dataplaneOf({}).options.requireSnapshot, true);
    const off = { dataplane: { configSync: { requireSnapshot: false } } };
    assert.equal(dataplaneOf(off).options.requireSnapshot, false);
    // Without the sidecar the configs are the admin's files: nothing to wait for.
    assert.equal(dataplaneOf(VALUE_SETS.dataplaneOnly!).options.requireSnapshot, false);
  });

  for (const metricsListen of ['', '127.0.0.1', '10.20.0.5', 'fd00::5']) {
    for (const listen of [[], ['192.168.1.0/24'], ['eth1', '!10.0.0.7']]) {
      for (const configSync of [true, false]) {
        const values = {
          dataplane: {
            listen,
            metrics: { listen: metricsListen },
            configSync: { enabled: configSync },
          },
        };
        test(`probes reach a server on every address: metrics.listen "${metricsListen}", listen ${JSON.stringify(listen)}, configSync ${configSync}`, () => {
          const pod = podSpecOf(findObject(renderChart(values), 'DaemonSet'));
          assert.deepEqual(
            pod.containers.map((c) => c.name),
            configSync ? ['tftp', 'config-sync'] : ['tftp'],
          );
          for (const c of pod.containers) {
            const served = portsOnEveryAddress(c);
            for (const probe of [c.livenessProbe, c.readinessProbe]) {
              const name = probe?.httpGet?.port;
              const port = c.ports?.find((p) => p.name === name);
              assert.ok(port, `${c.name}: probe port ${String(name)} is not a container port`);
              assert.ok(
                served.includes(port.containerPort),
                `${c.name}: the probes hit port ${port.containerPort}, served on every address: ${served}`,
              );
            }
            assert.equal(c.livenessProbe?.httpGet?.path, '/healthz');
            assert.equal(c.readinessProbe?.httpGet?.path, '/readyz');
          }
          // Host network: no two ports of the pod may collide on the node.
          const numbers = pod.containers.flatMap((c) => c.ports ?? []).map((p) => p.containerPort);
          assert.equal(new Set(numbers).size, numbers.length, `ports collide: ${numbers}`);
        });
      }
    }
  }
});
