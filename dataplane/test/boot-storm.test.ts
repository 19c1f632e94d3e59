/**
 * The boot storm, reduced (bench/storm.ts is the full one, and holds the figures): 50
 * clients, each from its own loopback address with its own NBD disk read natively, fetch a
 * kernel and an initrd at once, EDK2-like (blksize 1468, windowsize 4) and then iPXE-like
 * (tsize probe, blksize 1432 lock-step). Every client must get exactly its own disk's bytes
 * (neighbouring clients have different disks), and the server must stay up. Once with the
 * server's default worker count (RTFTP_WORKERS from the suite's environment, if any), once
 * with 2 worker threads.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { makeTempDir } from './helpers/fixtures.ts';
import type { TempDir } from './helpers/fixtures.ts';
import { runStormClients } from './helpers/storm-client.ts';
import type { StormProfile } from './helpers/storm-client.ts';
import { STORM_FILES, createStormFleet } from './helpers/storm-fleet.ts';
import type { StormFleet } from './helpers/storm-fleet.ts';
import { metricValue, rtftpMissingReason, startRtftpWithHttp } from './helpers/tftp-servers.ts';
import { waitFor } from './fixtures/nbd-harness.ts';

const CLIENTS = 50;
const MiB = 1024 * 1024;

describe(
  `boot storm: ${CLIENTS} clients, ${CLIENTS} disks, at once`,
  { skip: rtftpMissingReason(), timeout: 600_000 },
  () => {
    let dir: TempDir;
    let fleet: StormFleet;
    let payloads: Buffer[];

    before(async () => {
      dir = makeTempDir('rtftp-storm-test');
      fleet = await createStormFleet({
        dir: dir.path,
        clients: CLIENTS,
        kernelBytes: 1 * MiB + 333,
        initrdBytes: 4 * MiB + 77,
      });
      payloads = fleet.variants.flatMap((v) =>
        STORM_FILES.map((f) => readFileSync(v.files[f].path)),
      );
    });
    after(async () => {
      await fleet?.stop();
      dir?.remove();
    });

    for (const workers of [undefined, 2]) {
      const label = workers ? `${workers} worker threads` : 'the default worker count';
      test(`every client gets its own disk's kernel and initrd byte-identical, ${label}`, async () => {
        const { server, httpPort } = await startRtftpWithHttp(fleet.rtftpRoot, [
          // Room for every disk in each worker: --max-sessions is split evenly among the
          // workers, and the routing by address gives one worker a little more than half.
          '--max-sessions',
          String(2 * CLIENTS),
          ...(workers ? ['--workers', String(workers)] : []),
        ]);
        const metrics = async () => (await fetch(`http://127.0.0.1:${httpPort}/metrics`)).text();
        try {
          // Every disk connects at start (prefetch): the storm hits a server that was up.
          await waitFor(
            'every disk connected',
            async () =>
              (metricValue(await metrics(), 'rtftp_nbd_sessions_active{backend="native"}') ?? 0) >=
              CLIENTS,
            120_000,
            250,
          );
          for (const profile of ['edk2', 'ipxe'] as StormProfile[]) {
            const result = await runStormClients(
              {
                host: '127.0.0.1',
                port: server.port,
                profile,
                // Generous: a loaded 2-core machine, and this checks bytes, not speed.
                retransmitMs: 1000,
                maxRetries: 15,
                clients: fleet.clients.map((c) => ({
                  address: c.address,
                  fetches: STORM_FILES.map((f, j) => ({
                    name: fleet.rtftpPath(c, f),
                    payload: c.variant * STORM_FILES.length + j,
                  })),
                })),
              },
              payloads,
            );
            const failed = result.clients.filter((c) => !c.ok);
            assert.deepEqual(
              failed.map((c) => `${c.address}: ${c.failure}`),
              [],
              `${profile}: ${failed.length} of ${CLIENTS} clients failed`,
            );
            const expected = fleet.clients.reduce(
              (n, c) =>
                n + STORM_FILES.reduce((m, f) => m + fleet.variants[c.variant]!.files[f].size, 0),
              0,
            );
            assert.equal(result.bytes, expected, profile);
          }
          assert.ok(server.alive(), 'the server is still up');
          const text = await metrics();
          assert.equal(
            metricValue(text, 'rtftp_transfers_total{outcome="completed",source="nbd"}'),
            2 * 2 * CLIENTS,
          );
          const errors = server.logs.filter((l) => Number(l.level) >= 50);
          assert.deepEqual(errors, [], 'no error or fatal log line');
        } finally {
          await server.stop();
        }
      });
    }
  },
);
