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
