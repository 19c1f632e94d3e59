/**
 * Replays of what real network-boot firmware sends, byte for byte: the RRQs (option
 * order included), the size probes they abort, and the reads that follow.
 */
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { makeTempDir, seededBytes, sha256 } from './helpers/fixtures.ts';
import type { TempDir } from './helpers/fixtures.ts';
import {
  serverMissingReason,
  servedTree,
  startServerUnderTest,
  testingPeer,
} from './helpers/server-under-test.ts';
import { downloadFile } from './helpers/tftp-client.ts';
import { decodePacket, describePacket } from './helpers/tftp-packets.ts';
import { metricValue } from './helpers/tftp-servers.ts';
import { freePort } from './fixtures/nbdkit.ts';
import type { RunningServer } from './helpers/tftp-servers.ts';
import { UdpEndpoint } from './helpers/udp-endpoint.ts';

const PI_SERIAL = '3a8e6c21';
const FILES = {
  [`${PI_SERIAL}/start4.elf`]: 2 * 1024 * 1024 + 123,
  'ipxe/undionly.kpxe': 70_001,
  'grub/grub.cfg': 1_900,
  'uboot/zImage': 1_000_003,
  'EFI/BOOT/BOOTX64.EFI': 900_017,
};

/** An RRQ exactly as the firmware puts it on the wire (NUL-terminated fields, in its order). */
function rrq(...fields: string[]): Buffer {
  return Buffer.from(`\x00\x01${fields.map((f) => `${f}\x00`).join('')}`, 'latin1');
}

function error(code: number, message: string): Buffer {
  return Buffer.from(`\x00\x05\x00${String.fromCharCode(code)}${message}\x00`, 'latin1');
}

describe('replays of real network-boot firmware', { skip: serverMissingReason() }, () => {
  let dir: TempDir;
  let server: RunningServer;
  let metricsPort = 0;
  const content = new Map<string, Buffer>();

  before(async () => {
    dir = makeTempDir('rtftp-firmware');
    const tree = servedTree(dir.file('root'));
    let seed = 10;
    for (const [name, size] of Object.entries(FILES)) {
      const data = seededBytes(size, seed++);
      content.set(name, data);
      // The Pi's files sit in its own directory, as a Pi netboot server lays them out.
      const base = name.startsWith(PI_SERIAL) ? tree.clientDir('127.0.0.1') : tree.defaultDir;
      const path = `${base}/${name}`;
      makeParent(path);
      writeFileSync(path, data);
    }
    metricsPort = await freePort();
    const metrics = ['--metrics-port', String(metricsPort), '--metrics-listen', '127.0.0.1'];
    server = await startServerUnderTest(tree, metrics);
  });

  after(async () => {
    await server?.stop();
    dir?.remove();
  });

  /** Sends a probe RRQ, checks the OACK, aborts it and checks nothing else follows. */
  async function probeAndAbort(request: Buffer, abort: Buffer, expected: Record<string, string>) {
    const socket = await UdpEndpoint.open();
    try {
      await socket.send(request, server.port);
      const reply = await socket.receive(3000);
      assert.ok(reply, 'no answer to the probe RRQ');
      const oack = decodePacket(reply.msg);
      assert.equal(oack.kind, 'oack', `expected OACK, got ${describePacket(reply.msg)}`);
      if (oack.kind === 'oack') assert.deepEqual(oack.options, expected);
      await socket.send(abort, reply.port);
      // The probe is over: no DATA, and no OACK retransmitted after the client's ERROR.
      const later = await socket.collect(1500);
      assert.deepEqual(
        later.map((d) => describePacket(d.msg)),
        [],
      );
    } finally {
      socket.close();
    }
  }

  async function readAll(request: Buffer, name: string, expectedOack?: Record<string, string>) {
    const r = await downloadFile({
      host: '127.0.0.1',
      port: server.port,
      file: name,
      rrq: request,
    });
    assert.ok(r.ok, `read of ${name} failed: ${r.failure ?? JSON.stringify(r.error)}`);
    assert.equal(r.bytes, content.get(name)!.length);
    assert.equal(r.sha256, sha256(content.get(name)!));
    if (expectedOack) assert.deepEqual(r.oack, expectedOack);
    return r;
  }

  // In.tftpd (the harness check) knows no windowsize: it leaves it out of its OACK.
  const win = (w: string): Record<string, string> => (testingPeer ? {} : { windowsize: w });

  it('Raspberry Pi 4: tsize probe aborted with ERROR 0, then the read of <serial>/start4.elf', async () => {
    const name = `${PI_SERIAL}/start4.elf`;
    const size = String(FILES[name]);
    const request = rrq(name, 'octet', 'tsize', '0', 'blksize', '1024');
    await probeAndAbort(request, error(0, 'Early terminate'), { tsize: size, blksize: '1024' });
    await readAll(request, name, { tsize: size, blksize: '1024' });
  });

  it('iPXE: blksize 1432 with tsize', async () => {
    const name = 'ipxe/undionly.kpxe';
    const request = rrq(name, 'octet', 'blksize', '1432', 'tsize', '0');
    await readAll(request, name, { blksize: '1432', tsize: String(FILES[name]) });
  });

  it('GRUB: absolute path, blksize 1024 and tsize', async () => {
    const request = rrq('/grub/grub.cfg', 'octet', 'blksize', '1024', 'tsize', '0');
    await readAll(request, 'grub/grub.cfg', {
      blksize: '1024',
      tsize: String(FILES['grub/grub.cfg']),
    });
  });

  it('U-Boot: timeout 5, tsize, blksize 1468, windowsize 4', async () => {
    const name = 'uboot/zImage';
    const request = rrq(
      name,
      'octet',
      'timeout',
      '5',
      'tsize',
      '0',
      'blksize',
      '1468',
      'windowsize',
      '4',
    );
    const r = await readAll(request, name, {
      timeout: '5',
      tsize: String(FILES[name]),
      blksize: '1468',
      ...win('4'),
    });
    assert.equal(r.retransmits, 0, 'a loss-free loopback read needed retransmits');
  });

  it('UEFI: probe aborted with ERROR 8, then the read with windowsize 4', async () => {
    const name = 'EFI/BOOT/BOOTX64.EFI';
    const size = String(FILES[name]);
    const probe = rrq(name, 'octet', 'tsize', '0', 'blksize', '1468', 'windowsize', '4');
    const abort = error(8, 'User aborted the transfer');
    await probeAndAbort(probe, abort, { tsize: size, blksize: '1468', ...win('4') });
    const read = rrq(name, 'octet', 'blksize', '1468', 'windowsize', '4');
    await readAll(read, name, { blksize: '1468', ...win('4') });
  });

  it(
    'counts the two aborted probes in rtftp_probes_total, not as failed transfers',
    {
      skip: testingPeer ? 'in.tftpd has no metrics' : false,
    },
    async () => {
      await server.waitForLog((l) => l.msg === 'HTTP server listening');
      const text = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
      assert.equal(metricValue(text, 'rtftp_probes_total'), 2, 'rtftp_probes_total');
      for (const outcome of ['failed', 'aborted', 'timeout']) {
        const lines = text
          .split('\n')
          .filter((l) => l.startsWith(`rtftp_transfers_total{outcome="${outcome}"`));
        assert.deepEqual(
          lines.filter((l) => !l.endsWith(' 0')),
          [],
          `transfers counted as ${outcome}`,
        );
      }
    },
  );
});

function makeParent(path: string) {
  mkdirSync(path.slice(0, path.lastIndexOf('/')), { recursive: true });
}
