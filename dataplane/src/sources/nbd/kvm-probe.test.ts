import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { pino } from 'pino';
import { createDataplaneMetrics } from '../../metrics.ts';
import { decideKvmAtStart, onPath } from './kvm-probe.ts';

function captureLogger() {
  const lines: Record<string, unknown>[] = [];
  const logger = pino({ level: 'debug' }, { write: (l: string) => lines.push(JSON.parse(l)) });
  return { logger, lines };
}

async function kvmGauge(metrics: ReturnType<typeof createDataplaneMetrics>): Promise<number> {
  const value = (await metrics.kvmAvailable.get()).values[0]?.value;
  assert.ok(value !== undefined, 'rtftp_kvm_available has no sample');
  return value;
}

test('rtftp_kvm_available reads -1 until KVM is decided', async () => {
  const metrics = createDataplaneMetrics(undefined, false);
  assert.equal(await kvmGauge(metrics), -1);
  assert.match(await metrics.registry.metrics(), /^rtftp_kvm_available -1$/m);
});

test('without guestfish nothing is probed and the gauge stays -1', async () => {
  const metrics = createDataplaneMetrics(undefined, false);
  const { logger, lines } = captureLogger();
  const result = await decideKvmAtStart({
    mode: 'on',
    cacheFile: join(tmpdir(), 'unused'),
    logger,
    gauge: metrics.kvmAvailable,
    guestfishInstalled: async () => false,
  });
  assert.equal(result, null);
  assert.equal(await kvmGauge(metrics), -1);
  assert.equal(lines.at(-1)?.msg, 'KVM not probed');
});

for (const [mode, want] of [
  ['on', 1],
  ['off', 0],
] as const) {
  test(`--nbd-kvm ${mode} sets the gauge to ${want} at start`, async () => {
    const metrics = createDataplaneMetrics(undefined, false);
    const { logger, lines } = captureLogger();
    const result = await decideKvmAtStart({
      mode,
      cacheFile: join(tmpdir(), 'unused'),
      logger,
      gauge: metrics.kvmAvailable,
      guestfishInstalled: async () => true,
    });
    assert.equal(result?.available, want === 1);
    assert.equal(await kvmGauge(metrics), want);
    assert.equal(lines.at(-1)?.msg, 'KVM probed at start');
    assert.equal(lines.at(-1)?.kvm, want === 1);
  });
}

test('onPath finds an executable and ignores a file that is not one', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'rtftp-onpath-'));
  try {
    writeFileSync(join(dir, 'tool'), '#!/bin/sh\n');
    writeFileSync(join(dir, 'data'), '');
    chmodSync(join(dir, 'tool'), 0o755);
    chmodSync(join(dir, 'data'), 0o644);
    assert.equal(await onPath('tool', `/nonexistent:${dir}`), true);
    // root can read anything, but X_OK still needs an execute bit
    assert.equal(await onPath('data', dir), false);
    assert.equal(await onPath('missing', dir), false);
    assert.equal(await onPath('tool', ''), false);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
