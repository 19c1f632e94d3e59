/**
 * HTTP boot in the chart (docs/http-boot.md): on by default on its own port, the flags the
 * real dataplane parser accepts, a container port, off when disabled, listen terms passed
 * through, and a port that clashes with a metrics or probe port refused at render time.
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { parseCli as parseDataplaneCli } from '../../dataplane/src/cli.ts';
import {
  argsOf,
  containerOf,
  envOf,
  findObject,
  helmMissingReason,
  helmWithValues,
  renderChart,
} from './helm.ts';

const skip = helmMissingReason();
if (skip) console.log(`# skipped chart HTTP boot tests: ${skip}`);

const tftpOf = (values: object) =>
  containerOf(findObject(renderChart(values), 'DaemonSet'), 'tftp');
const optionsOf = (values: object) => {
  const c = tftpOf(values);
  const o = parseDataplaneCli(argsOf(c), envOf(c));
  assert.ok(o, 'dataplane parser returned help');
  return o;
};

describe('chart: HTTP boot', { skip }, () => {
  test('on by default, on port 8069, with a container port of its own', () => {
    assert.equal(optionsOf({}).httpPort, 8069);
    const ports = (tftpOf({}) as { ports?: { name: string; containerPort: number }[] }).ports;
    assert.deepEqual(
      ports?.find((p) => p.name === 'http-boot'),
      { name: 'http-boot', containerPort: 8069, protocol: 'TCP' },
    );
  });

  test('off when disabled: no flag, no port', () => {
    const values = { dataplane: { httpBoot: { enabled: false, port: 8069 } } };
    assert.equal(optionsOf(values).httpPort, 0);
    const ports = (tftpOf(values) as { ports?: { name: string }[] }).ports ?? [];
    assert.equal(
      ports.some((p) => p.name === 'http-boot'),
      false,
    );
  });

  test('listen terms reach --http-listen; empty means where TFTP listens', () => {
    const o = optionsOf({
      dataplane: {
        listen: ['192.168.10.1'],
        httpBoot: { enabled: true, port: 8080, listen: ['192.168.20.1'] },
      },
    });
    assert.equal(o.httpPort, 8080);
    assert.deepEqual(
      o.httpListen.include.map((s) => s.kind === 'address' && s.address),
      ['192.168.20.1'],
    );
    const inherited = optionsOf({ dataplane: { listen: ['192.168.10.1'] } });
    assert.deepEqual(
      inherited.httpListen.include.map((s) => s.kind === 'address' && s.address),
      ['192.168.10.1'],
    );
  });

  for (const [name, values] of [
    [
      'dataplane.metrics.port',
      { metrics: { port: 9000 }, httpBoot: { enabled: true, port: 9000 } },
    ],
    ['dataplane.metrics.probePort', { httpBoot: { enabled: true, port: 9671 } }],
    ['dataplane.configSync.metricsPort', { httpBoot: { enabled: true, port: 9670 } }],
    ['dataplane.configSync.probePort', { httpBoot: { enabled: true, port: 9672 } }],
  ] as const) {
    test(`a port that is also ${name} is refused`, () => {
      const run = helmWithValues(['template', 'x'], { dataplane: values });
      assert.notEqual(run.status, 0);
      assert.match(
        run.stderr,
        new RegExp(`httpBoot.port \\d+ is also ${name.replace(/\./g, '\\.')}`),
      );
    });
  }

  test('the schema refuses a port below 1024 and unknown keys', () => {
    for (const httpBoot of [
      { enabled: true, port: 80 },
      { enabled: true, port: 8069, prot: 1 },
    ]) {
      const run = helmWithValues(['template', 'x'], { dataplane: { httpBoot } });
      assert.notEqual(run.status, 0, JSON.stringify(httpBoot));
    }
  });
});
