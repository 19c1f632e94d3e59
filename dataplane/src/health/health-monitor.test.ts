import { test } from 'node:test';
import assert from 'node:assert/strict';
import { HealthMonitor, judgeHealth } from './health-monitor.ts';
import type { Stall } from './health-monitor.ts';

const limits = { stallLimitMs: 1000, windowMs: 1000 };

for (const [what, stalls, now, expected] of [
  ['no stall', [], 10_000, { ok: true }],
  ['stalls under the limit', [{ part: 'event-loop', ms: 900, at: 9_900 }], 10_000, { ok: true }],
  [
    'an event-loop stall past the limit, just ended',
    [{ part: 'event-loop', ms: 2500, at: 9_900 }],
    10_000,
    { ok: false, reason: 'event loop blocked for 2.5 s (limit 1.0 s)' },
  ],
  [
    'a thread-pool stall past the limit',
    [{ part: 'thread-pool', ms: 1200, at: 10_000 }],
    10_000,
    { ok: false, reason: 'thread pool blocked (a canary fs.stat waited) for 1.2 s (limit 1.0 s)' },
  ],
  [
    'a stall that ended longer ago than the window',
    [{ part: 'thread-pool', ms: 60_000, at: 8_000 }],
    10_000,
    { ok: true },
  ],
] as [string, Stall[], number, unknown][]) {
  test(`judges health: ${what}`, () => {
    assert.deepEqual(judgeHealth(stalls, now, limits), expected);
  });
}

test('both parts stalled: both named', () => {
  const v = judgeHealth(
    [
      { part: 'event-loop', ms: 3000, at: 100 },
      { part: 'thread-pool', ms: 5000, at: 100 },
    ],
    100,
    limits,
  );
  assert.equal(v.ok, false);
  assert.match(!v.ok ? v.reason : '', /event loop blocked for 3\.0 s .*; thread pool .* 5\.0 s/);
});

test('a canary that does not come back is unhealthy while it waits, healthy once it returns', async () => {
  let release: () => void = () => undefined;
  let calls = 0;
  const monitor = new HealthMonitor({
    // Bounds well above a loaded machine's timer lateness, so only the canary trips them.
    stallLimitMs: 500,
    windowMs: 500,
    tickMs: 20,
    canary: () => {
      calls++;
      return calls === 1 ? new Promise<void>((r) => (release = r)) : Promise.resolve();
    },
  });
  monitor.start();
  try {
    assert.deepEqual(monitor.check(), { ok: true });
    await new Promise((r) => setTimeout(r, 800));
    const wedged = monitor.check();
    assert.equal(wedged.ok, false);
    assert.match(!wedged.ok ? wedged.reason : '', /thread pool blocked .* for \d+\.\d s/);
    assert.equal(calls, 1, 'one canary at a time');
    release();
    await new Promise((r) => setTimeout(r, 20));
    // The stall that just ended is still reported for the window, then no more.
    assert.equal(monitor.check().ok, false);
    await new Promise((r) => setTimeout(r, 1000));
    assert.deepEqual(monitor.check(), { ok: true });
    assert.ok(calls > 1, 'the canary runs again');
  } finally {
    monitor.stop();
  }
});

test('an event loop held past the limit is reported once it runs again', async () => {
  const monitor = new HealthMonitor({ stallLimitMs: 100, windowMs: 2000, tickMs: 10 });
  monitor.start();
  try {
    await new Promise((r) => setTimeout(r, 30));
    const until = performance.now() + 300;
    while (performance.now() < until) {
      // held on purpose
    }
    await new Promise((r) => setTimeout(r, 30));
    const v = monitor.check();
    assert.equal(v.ok, false);
    assert.match(!v.ok ? v.reason : '', /event loop blocked for 0\.[3-9] s/);
  } finally {
    monitor.stop();
  }
});
