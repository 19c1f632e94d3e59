import { test } from 'node:test';
import assert from 'node:assert/strict';
import { requestFromBusyPort } from './server-support.ts';
import type { BusyPort } from './server-support.ts';

type State = NonNullable<BusyPort['state']>;
const unproven: State = { proven: false, retries: 0, lastBlock: null, sentUpTo: 1 };
const running: State = { proven: true, retries: 0, lastBlock: null, sentUpTo: 9 };
const stalled: State = { ...running, retries: 1 };
const allSent: State = { proven: true, retries: 0, lastBlock: 9, sentUpTo: 9 };

const cases: [string, BusyPort, ReturnType<typeof requestFromBusyPort>][] = [
  ['the same request while the file is resolved', { sameRequest: true, state: null }, 'ignore'],
  ['another request while the file is resolved', { sameRequest: false, state: null }, 'supersede'],
  ['the same request before any ACK', { sameRequest: true, state: unproven }, 'repeat'],
  ['another file before any ACK', { sameRequest: false, state: unproven }, 'supersede'],
  [
    'the same request while the transfer progresses',
    { sameRequest: true, state: running },
    'ignore',
  ],
  [
    'another request while the transfer progresses',
    { sameRequest: false, state: running },
    'ignore',
  ],
  ['the same request once it stalled', { sameRequest: true, state: stalled }, 'supersede'],
  ['the same request once everything was sent', { sameRequest: true, state: allSent }, 'supersede'],
];
for (const [name, busy, meaning] of cases) {
  test(`a request from a busy port: ${name} → ${meaning}`, () => {
    assert.equal(requestFromBusyPort(busy), meaning);
  });
}
