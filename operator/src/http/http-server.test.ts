import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import { test } from 'node:test';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { startHttpServer } from './http-server.ts';

const log = pino({ level: 'silent' });

async function freePort(): Promise<number> {
  const s = createServer().listen(0, '127.0.0.1');
  await once(s, 'listening');
  const { port } = s.address() as AddressInfo;
  s.close();
  return port;
}

const code = (url: string) =>
  fetch(url).then(
    (r) => r.status,
    () => 0,
  );

test('with no host the server answers on both families, so the kubelet reaches it on an IPv6-only cluster', async () => {
  const port = await freePort();
  const app = await startHttpServer({
    port,
    host: '',
    registry: new Registry(),
    ready: () => true,
    log,
  });
  try {
    for (const host of ['127.0.0.1', '[::1]'])
      assert.deepEqual(
        [
          await code(`http://${host}:${port}/healthz`),
          await code(`http://${host}:${port}/metrics`),
        ],
        [200, 200],
        host,
      );
  } finally {
    await app.close();
  }
});

test('a probe port serves only the probes on every address, and closes with the main server', async () => {
  const [port, probePort] = [await freePort(), await freePort()];
  let ready = false;
  const app = await startHttpServer({
    port,
    host: '127.0.0.1',
    probePort,
    registry: new Registry(),
    ready: () => ready,
    log,
  });
  const at = (path: string) => code(`http://[::1]:${probePort}${path}`);
  try {
    assert.equal(
      await code(`http://[::1]:${port}/healthz`),
      0,
      'the main server is on 127.0.0.1 only',
    );
    assert.deepEqual(
      [await at('/healthz'), await at('/readyz'), await at('/metrics')],
      [200, 503, 404],
    );
    ready = true;
    assert.equal(await at('/readyz'), 200);
  } finally {
    await app.close();
  }
  assert.equal(await at('/healthz'), 0);
});
