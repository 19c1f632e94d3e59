/**
 * The storm's HTTP clients against a real HTTP server (nginx, as the storm's baseline):
 * what they call byte-identical must be exactly that, and every failure carries its reason.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { freePort } from '../../dataplane/test/fixtures/nbdkit.ts';
import { makeTempDir, writeSeededFile } from '../../dataplane/test/helpers/fixtures.ts';
import type { TempDir } from '../../dataplane/test/helpers/fixtures.ts';
import { runHttpClients } from './http-load-client.ts';
import type { HttpFetch, HttpLoadSpec } from './http-load-client.ts';
import { nginxMissingReason, startNginx } from './nginx.ts';
import type { RunningNginx } from './nginx.ts';

/** Sizes that end mid-chunk, so a short body cannot pass as whole. */
const KERNEL = 300 * 1024 + 11;
const INITRD = 1024 * 1024 + 7;

describe('storm HTTP clients', { skip: nginxMissingReason() }, () => {
  let dir: TempDir;
  let nginx: RunningNginx;
  let files: { kernel: HttpFetch; initrd: HttpFetch };

  before(async () => {
    dir = makeTempDir('rtftp-http-load');
    files = {
      kernel: {
        target: '/v0/vmlinuz',
        size: KERNEL,
        sha256: writeSeededFile(dir.file('root/v0/vmlinuz'), KERNEL, 1),
      },
      initrd: {
        target: '/v0/initrd.img',
        size: INITRD,
        sha256: writeSeededFile(dir.file('root/v0/initrd.img'), INITRD, 2),
      },
    };
    nginx = await startNginx({
      dir: dir.file('nginx'),
      root: dir.file('root'),
      address: '127.0.0.1',
      port: await freePort(),
    });
  });
  after(async () => {
    await nginx?.stop();
    dir?.remove();
  });

  const spec = (clients: HttpFetch[][], sequential = true): HttpLoadSpec => ({
    profile: 'http',
    host: '127.0.0.1',
    port: nginx.port,
    sequential,
    idleTimeoutMs: 20_000,
    clients: clients.map((fetches, i) => ({ address: `127.100.90.${i + 1}`, fetches })),
  });

  test('each client gets its kernel then its initrd, byte-identical, on one connection', async () => {
    const both = [files.kernel, files.initrd];
    const r = await runHttpClients(spec([both, both, both]));
    assert.deepEqual(
      r.clients.map((c) => [c.address, c.ok, c.failure]),
      [1, 2, 3].map((i) => [`127.100.90.${i}`, true, undefined]),
    );
    assert.equal(r.bytes, 3 * (KERNEL + INITRD));
    assert.equal(r.connections, 3, 'the initrd reused the kernel’s keep-alive connection');
    assert.ok(r.clients.every((c) => c.ms > 0));
  });

  test('with parallel fetches both files go at once, on two connections', async () => {
    const r = await runHttpClients(spec([[files.kernel, files.initrd]], false));
    assert.equal(r.clients[0]?.ok, true, r.clients[0]?.failure);
    assert.equal(r.connections, 2);
  });

  test('a body that differs from the expected bytes fails its client, and only it', async () => {
    const wrong = { ...files.initrd, sha256: files.kernel.sha256 };
    const r = await runHttpClients(
      spec([
        [files.kernel, wrong],
        [files.kernel, files.initrd],
      ]),
    );
    assert.equal(r.clients[0]?.ok, false);
    assert.equal(r.clients[0]?.failure, '/v0/initrd.img: bytes differ (sha256)');
    assert.equal(r.clients[1]?.ok, true, r.clients[1]?.failure);
  });

  test('a body of another length fails with both lengths', async () => {
    const longer = { ...files.kernel, size: KERNEL + 1 };
    const r = await runHttpClients(spec([[longer]]));
    assert.equal(r.clients[0]?.failure, `/v0/vmlinuz: short: ${KERNEL} of ${KERNEL + 1} bytes`);
  });

  test('a status other than 200 fails the client, and its next file is never asked', async () => {
    const missing = { ...files.kernel, target: '/v0/absent' };
    const r = await runHttpClients(spec([[missing, files.initrd]]));
    assert.equal(r.clients[0]?.failure, '/v0/absent: HTTP 404');
    assert.equal(r.bytes, 0, 'the initrd was not fetched after the kernel failed');
  });

  test('a refused connection fails the client with the reason', async () => {
    const closed = await freePort();
    const r = await runHttpClients({ ...spec([[files.kernel]]), port: closed });
    assert.match(r.clients[0]?.failure ?? '', /^\/v0\/vmlinuz: connect ECONNREFUSED/);
  });
});
