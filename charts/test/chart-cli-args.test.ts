import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { parseCli as parseDataplaneCli } from '../../dataplane/src/cli.ts';
import { parseCli as parseOperatorCli } from '../../operator/src/cli.ts';
import {
  NAMESPACE,
  VALUE_SETS,
  argsOf,
  envOf,
  containerOf,
  findObject,
  helmMissingReason,
  helmWithValues,
  podSpecOf,
  renderChart,
} from './helm.ts';

const skip = helmMissingReason();
if (skip) console.log(`# skipped chart command-line tests: ${skip}`);

describe('the chart passes arguments the programs accept', { skip }, () => {
  for (const [name, values] of Object.entries(VALUE_SETS)) {
    test(`the real command-line parsers accept what values "${name}" renders`, () => {
      const objects = renderChart(values);
      const ds = objects.find((o) => o.kind === 'DaemonSet');
      if (ds) {
        const tftp = containerOf(ds, 'tftp');
        assert.equal(tftp.command?.at(-1), '/app/bin/rtftp.js');
        const options = parseDataplaneCli(argsOf(tftp), envOf(tftp));
        assert.ok(options, 'dataplane parser returned help');
        const port = (values as { dataplane?: { port?: number } }).dataplane?.port ?? 69;
        assert.equal(options.port, port);
        assert.equal(options.root, '/srv/rtftp');
        const sync = podSpecOf(ds).containers.find((c) => c.name === 'config-sync');
        // Without the sidecar, hand-written <ip>.nbd files sit in the root itself.
        assert.equal(options.configDir, sync ? '/run/rtftp/configs' : '/srv/rtftp');
        if (sync) {
          assert.deepEqual(sync.command, ['node', '/app/bin/rtftp-operator.js', 'sync']);
          const args = parseOperatorCli(['sync', ...argsOf(sync)], envOf(sync));
          assert.ok(args !== 'help' && args.mode === 'sync');
          assert.equal(args.dir, options.configDir, 'sync writes where the dataplane reads');
          assert.equal(args.selector, 'rtftp.io/rendered-configs=true');
          assert.equal(args.metricsPort, 9670);
        }
      }
      const deploy = objects.find((o) => o.kind === 'Deployment');
      if (deploy) {
        const operator = containerOf(deploy, 'operator');
        const args = parseOperatorCli(argsOf(operator), envOf(operator));
        assert.ok(args !== 'help' && args.mode === 'controller');
        assert.equal(args.namespace, NAMESPACE);
        const all = (values as { operator?: { watchAllNamespaces?: boolean } }).operator
          ?.watchAllNamespaces;
        assert.equal(args.watchNamespace, all ? '' : NAMESPACE);
      }
    });
  }

  test('listen addresses reach the dataplane, the node IP included', () => {
    const tftp = containerOf(findObject(renderChart(VALUE_SETS.pinned!), 'DaemonSet'), 'tftp');
    assert.deepEqual(
      parseDataplaneCli(argsOf(tftp), envOf(tftp))?.listen.include.map(
        (s) => s.kind === 'address' && s.address,
      ),
      ['192.168.10.1', '192.168.10.2'],
    );
  });

  // Admission and retransmission (docs/admission.md)
  test('admission values reach the dataplane, the largest the program accepts included', () => {
    const table = [
      ['maxTransfersPerSubnet', 'maxTransfersPerSubnet', 64],
      ['maxPending', 'maxPending', 1_000_000],
      ['maxPendingPerSubnet', 'maxPendingPerSubnet', 50],
      ['maxTransferMemoryMiB', 'maxTransferMemoryMiB', 65536],
      ['maxTimeout', 'maxTimeoutS', 255],
      ['stallTimeout', 'stallTimeoutS', 3600],
    ] as const;
    const admission = Object.fromEntries(table.map(([key, , value]) => [key, value]));
    const ds = findObject(renderChart({ dataplane: { admission } }), 'DaemonSet');
    const tftp = containerOf(ds, 'tftp');
    const o = parseDataplaneCli(argsOf(tftp), envOf(tftp));
    assert.ok(o);
    for (const [key, option, value] of table) assert.equal(o[option], value, key);
  });

  test('admission values past what the program accepts are refused by the schema, naming the key', () => {
    for (const [key, value] of [
      ['maxTimeout', 256],
      ['stallTimeout', 3601],
      ['maxTransferMemoryMiB', 0],
      ['maxPendingPerSubnet', 0],
    ] as const) {
      const run = helmWithValues(['template', 'boot'], {
        dataplane: { admission: { [key]: value } },
      });
      assert.notEqual(run.status, 0, `helm accepted ${key}: ${value}`);
      assert.match(run.stderr, new RegExp(`dataplane\\.admission\\.${key}`));
    }
  });

  // Worker mode and the listening socket's buffer (docs/performance.md)
  test('workers and listenBufferKiB reach the dataplane; the schema refuses what it would not take', () => {
    for (const [workers, listenBufferKiB] of [
      [1, 8192],
      [32, 0],
      ['auto', 1_048_576],
    ] as const) {
      const ds = findObject(renderChart({ dataplane: { workers, listenBufferKiB } }), 'DaemonSet');
      const tftp = containerOf(ds, 'tftp');
      const o = parseDataplaneCli(argsOf(tftp), envOf(tftp));
      assert.ok(o);
      assert.equal(o.workers, workers);
      assert.equal(o.listen.receiveBufferBytes, listenBufferKiB * 1024);
    }
    for (const [key, value] of [
      ['workers', 0],
      ['workers', 257],
      ['workers', 'many'],
      ['listenBufferKiB', -1],
      ['listenBufferKiB', 1_048_577],
    ] as const) {
      const run = helmWithValues(['template', 'boot'], { dataplane: { [key]: value } });
      assert.notEqual(run.status, 0, `helm accepted ${key}: ${value}`);
      assert.match(run.stderr, new RegExp(`dataplane\\.${key}|dataplane/${key}`));
    }
  });
});
