import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mergeStatus } from './conditions.ts';
import type { DesiredStatus } from './render.ts';

const desired = (rendered: 'True' | 'False', generation = 1): DesiredStatus => ({
  observedGeneration: generation,
  conditions: [
    { type: 'Accepted', status: 'True', reason: 'Valid', message: 'ok' },
    {
      type: 'Rendered',
      status: rendered,
      reason: rendered === 'True' ? 'Rendered' : 'Conflict',
      message: 'm',
    },
  ],
});

test('a first status is a change with Accepted and Rendered events', () => {
  const m = mergeStatus(undefined, desired('True'), 'T1');
  assert.equal(m.changed, true);
  assert.deepEqual(
    m.events.map((e) => e.reason),
    ['Accepted', 'Rendered'],
  );
  assert.ok(
    m.status.conditions.every((c) => c.lastTransitionTime === 'T1' && c.observedGeneration === 1),
  );
});

test('the same status again is no change and no event', () => {
  const first = mergeStatus(undefined, desired('True'), 'T1').status;
  const again = mergeStatus(first, desired('True'), 'T2');
  assert.equal(again.changed, false);
  assert.deepEqual(again.events, []);
});

test('lastTransitionTime moves only for the condition that flipped', () => {
  const first = mergeStatus(undefined, desired('True'), 'T1').status;
  const next = mergeStatus(first, desired('False'), 'T2');
  assert.equal(next.changed, true);
  const [accepted, rendered] = next.status.conditions;
  assert.equal(accepted!.lastTransitionTime, 'T1');
  assert.equal(rendered!.lastTransitionTime, 'T2');
});

test('a new generation with the same outcome updates observedGeneration without an event', () => {
  const first = mergeStatus(undefined, desired('True'), 'T1').status;
  const next = mergeStatus(first, desired('True', 2), 'T2');
  assert.equal(next.changed, true);
  assert.equal(next.status.observedGeneration, 2);
  assert.ok(next.status.conditions.every((c) => c.observedGeneration === 2));
  assert.deepEqual(next.events, []);
});

test('Accepted=False reason NotPermitted records a NotPermitted Warning, not Invalid', () => {
  const m = mergeStatus(
    undefined,
    {
      observedGeneration: 1,
      conditions: [
        { type: 'Accepted', status: 'False', reason: 'NotPermitted', message: 'no BootNetwork' },
      ],
    },
    'T1',
  );
  assert.deepEqual(m.events, [
    { reason: 'NotPermitted', type: 'Warning', message: 'no BootNetwork' },
  ]);
});

test('Ready: an Event when it turns True and when it turns False again, none for the first False or a new count', () => {
  const withReady = (status: 'True' | 'False', message: string): DesiredStatus => ({
    observedGeneration: 1,
    conditions: [
      ...desired('True').conditions,
      { type: 'Ready', status, reason: status === 'True' ? 'Served' : 'Syncing', message },
    ],
  });
  const first = mergeStatus(undefined, withReady('False', 'served by 0/2 nodes'), 'T1');
  assert.deepEqual(
    first.events.map((e) => e.reason),
    ['Accepted', 'Rendered'],
  );
  const counted = mergeStatus(first.status, withReady('False', 'served by 1/2 nodes'), 'T2');
  assert.equal(counted.changed, true);
  assert.deepEqual(counted.events, []);
  const ready = mergeStatus(counted.status, withReady('True', 'served by 2/2 nodes'), 'T3');
  assert.deepEqual(ready.events, [
    { reason: 'Ready', type: 'Normal', message: 'served by 2/2 nodes' },
  ]);
  const more = mergeStatus(ready.status, withReady('True', 'served by 3/3 nodes'), 'T4');
  assert.deepEqual(more.events, []);
  assert.equal(more.status.conditions.find((c) => c.type === 'Ready')!.lastTransitionTime, 'T3');
  const lost = mergeStatus(more.status, withReady('False', 'served by 2/3 nodes'), 'T5');
  assert.deepEqual(lost.events, [
    { reason: 'NotReady', type: 'Warning', message: 'served by 2/3 nodes' },
  ]);
});
