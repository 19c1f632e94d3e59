/**
 * rtftp_kvm_available on a real dataplane process: -1 until KVM is decided, decided at
 * start (not at the first appliance) when libguestfs is installed, and -1 for good where
 * it is not. A gauge reading 0 before anything probed paged RtftpKvmUnavailable for nothing.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { onPath } from '../src/sources/nbd/kvm-probe.ts';
import { freePort } from './fixtures/nbdkit.ts';
import { makeTempDir } from './helpers/fixtures.ts';
import type { TempDir } from './helpers/fixtures.ts';
import { metricValue, rtftpMissingReason, startRtftp } from './helpers/tftp-servers.ts';
import type { RunningServer } from './helpers/tftp-servers.ts';

const skip = rtftpMissingReason();
const guestfish = await onPath('guestfish');

describe('rtftp_kvm_available on a running dataplane', { skip }, () => {
  let dir: TempDir;
  before(() => {
    dir = makeTempDir('rtftp-kvm-gauge');
  });
  after(() => dir.remove());

  async function start(args: string[], env: Record<string, string> = {}) {
    const metricsPort = await freePort();
    const server = await startRtftp({
      root: dir.path,
      args: ['--metrics-port', String(metricsPort), '--metrics-listen', '127.0.0.1', ...args],
      env,
    });
    await server.waitForLog((l) => l.msg === 'HTTP server listening');
    const gauge = async () =>
      metricValue(
        await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text(),
        'rtftp_kvm_available',
      );
    return { server, gauge };
  }

  it(
    'is decided at start with no NBD config, and a restart reuses the decision of this boot',
    { skip: guestfish ? undefined : 'guestfish not installed (Debian libguestfs-tools)' },
    async () => {
      const cacheDir = dir.file('appliance-cache');
      const args = ['--work-dir', dir.file('work'), '--appliance-cache-dir', cacheDir];
      let server: RunningServer | undefined;
      try {
        const first = await start(args);
        server = first.server;
        // The probe boots a kernel under KVM for at most 5 s; generous for a loaded machine.
        const probed = await server.waitForLog((l) => l.msg === 'KVM probed at start', 60_000);
        assert.equal(typeof probed.kvm, 'boolean');
        assert.equal(await first.gauge(), probed.kvm ? 1 : 0);
        await server.stop();

        const second = await start(args);
        server = second.server;
        const again = await server.waitForLog((l) => l.msg === 'KVM probed at start', 60_000);
        assert.equal(again.kvm, probed.kvm);
        assert.match(String(again.reason), /\(probed earlier this boot\)$/);
        assert.equal(await second.gauge(), probed.kvm ? 1 : 0);
      } finally {
        await server?.stop();
      }
    },
  );

  it('stays -1 where guestfish is not installed, so the alert cannot fire', async () => {
    // An empty PATH: the dataplane runs by absolute path and needs no other program to start.
    const { server, gauge } = await start([], { PATH: dir.file('empty-path') });
    try {
      const line = await server.waitForLog((l) => l.msg === 'KVM not probed', 30_000);
      assert.match(String(line.reason), /guestfish/);
      assert.equal(await gauge(), -1);
    } finally {
      await server.stop();
    }
  });
});
