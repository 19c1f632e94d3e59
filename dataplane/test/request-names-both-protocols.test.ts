/**
 * Hostile names are refused exactly alike over TFTP and HTTP: the one table of cases
 * (helpers/hostile-names.ts, which request-path.test.ts runs against parseRequestPath)
 * sent on the wire to one daemon, over TFTP as an RRQ (ERROR 2) and over HTTP as a
 * percent-encoded path (403), each refusal logged with the same reason and counted under
 * its protocol. A legitimate name next to each proves the server was serving meanwhile.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { makeTempDir } from './helpers/fixtures.ts';
import type { TempDir } from './helpers/fixtures.ts';
import { HOSTILE_NAMES } from './helpers/hostile-names.ts';
import { rawRequest, startRtftpWithHttpBoot, targetOf } from './helpers/http-boot.ts';
import type { RtftpWithHttpBoot } from './helpers/http-boot.ts';
import { decodePacket, encodeRrq } from './helpers/tftp-packets.ts';
import { metricValue, rtftpMissingReason } from './helpers/tftp-servers.ts';
import { UdpEndpoint } from './helpers/udp-endpoint.ts';

describe(
  'hostile names over TFTP and HTTP',
  { skip: rtftpMissingReason(), timeout: 120_000 },
  () => {
    let dir: TempDir;
    let rtftp: RtftpWithHttpBoot;
    let udp: UdpEndpoint;

    before(async () => {
      dir = makeTempDir('rtftp-names');
      const root = dir.file('root');
      await mkdir(join(root, 'default', 'a'), { recursive: true });
      // What a refused name would reach if it were not refused: the config, a file beside.
      await writeFile(join(root, 'default', 'ok.txt'), 'served\n');
      await writeFile(join(root, '10.0.0.5.nbd'), '{}');
      await writeFile(join(root, 'default', 'x'), 'x');
      rtftp = await startRtftpWithHttpBoot(root);
      udp = await UdpEndpoint.open();
    });

    after(async () => {
      udp?.close();
      await rtftp?.server.stop();
      dir?.remove();
    });

    for (const [name, reason] of HOSTILE_NAMES) {
      const label = JSON.stringify(
        name.length > 40 ? `${name.slice(0, 20)}…(${name.length})` : name,
      );
      it(`${label}: ERROR 2 over TFTP, 403 over HTTP, both "${reason}"`, async () => {
        // A NUL ends a name in an RRQ: TFTP cannot carry this one (HTTP can, as %00).
        if (!name.includes('\0')) {
          await udp.send(encodeRrq(name), rtftp.server.port);
          const reply = await udp.receive(3000);
          assert.ok(reply, 'no TFTP answer');
          const p = decodePacket(reply.msg);
          assert.deepEqual([p.kind, p.kind === 'error' && p.code], ['error', 2]);
          await rtftp.server.waitForLog(
            (l) =>
              l.msg === 'Request refused' &&
              l.protocol === 'tftp' &&
              l.file === name &&
              l.reason === reason,
          );
        }
        const http = await rawRequest(rtftp.httpPort, targetOf(name));
        assert.equal(http.status, 403);
        await rtftp.server.waitForLog(
          (l) =>
            l.msg === 'Request refused' &&
            l.protocol === 'http' &&
            l.file === name &&
            l.reason === reason,
        );
        assert.equal((await rawRequest(rtftp.httpPort, '/ok.txt')).body.toString(), 'served\n');
      });
    }

    it('each reason is counted once per name under each protocol', async () => {
      const text = await (await fetch(`http://127.0.0.1:${rtftp.metricsPort}/metrics`)).text();
      const count = (reason: string, protocol: string) =>
        metricValue(
          text,
          `rtftp_requests_refused_total{reason="${reason}",protocol="${protocol}"}`,
        ) ?? 0;
      for (const reason of new Set(HOSTILE_NAMES.map(([, r]) => r))) {
        const names = HOSTILE_NAMES.filter(([, r]) => r === reason);
        assert.equal(count(reason, 'http'), names.length, `http ${reason}`);
        assert.equal(
          count(reason, 'tftp'),
          names.filter(([n]) => !n.includes('\0')).length,
          `tftp ${reason}`,
        );
      }
    });
  },
);
