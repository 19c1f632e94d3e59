import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  claimKeyOf,
  formatClaim,
  parseClaim,
  readClaimLedger,
  serialClaimId,
  settleClaims,
  type Claim,
  type Claimant,
} from './claims.ts';

const HOUR = 3600_000;
const T0 = Date.parse('2026-03-01T00:00:00Z');
const c = (namespace: string, name: string, ip = '10.0.0.5'): Claimant => ({
  key: `${namespace}/${name}`,
  namespace,
  ip,
});
const ledger = (entries: Record<string, Claim>) => new Map(Object.entries(entries));

test('an unclaimed IP goes to its oldest claimant, whose namespace is recorded', () => {
  const a = c('tenant-a', 'one');
  const b = c('tenant-b', 'two');
  const s = settleClaims([a, b], new Map(), T0, 24 * HOUR);
  assert.equal(s.holders.get('10.0.0.5'), a);
  assert.deepEqual(s.ledger.get('10.0.0.5'), { namespace: 'tenant-a' });
  assert.deepEqual(s.losers.get(b.key), { id: '10.0.0.5', holder: null });
});

test('a claim from another namespace never wins, however old, while the holder is away', () => {
  const olderB = c('tenant-b', 'old');
  const held = ledger({ '10.0.0.5': { namespace: 'tenant-a' } });
  const gone = settleClaims([olderB], held, T0, 24 * HOUR);
  assert.equal(gone.holders.size, 0);
  assert.deepEqual(gone.losers.get(olderB.key), { id: '10.0.0.5', holder: null });
  assert.deepEqual(gone.ledger.get('10.0.0.5'), {
    namespace: 'tenant-a',
    vacantSince: '2026-03-01T00:00:00Z',
  });
  assert.equal(gone.nextExpiryMs, 24 * HOUR);
  // Recreated (younger than B): it gets its IP back.
  const recreated = c('tenant-a', 'one');
  const back = settleClaims([olderB, recreated], gone.ledger, T0 + HOUR, 24 * HOUR);
  assert.equal(back.holders.get('10.0.0.5'), recreated);
  assert.deepEqual(back.ledger.get('10.0.0.5'), { namespace: 'tenant-a' });
});

test('within one namespace the oldest claimant wins and a loser names it', () => {
  const first = c('tenant-a', 'first');
  const second = c('tenant-a', 'second');
  const s = settleClaims([first, second], ledger({ '10.0.0.5': { namespace: 'tenant-a' } }), T0, 0);
  assert.equal(s.holders.get('10.0.0.5'), first);
  assert.equal(s.losers.get(second.key)?.holder, first);
  // The holder gone, the next one of its namespace takes over at once.
  assert.equal(settleClaims([second], s.ledger, T0, 0).holders.get('10.0.0.5'), second);
});

test('a vacant claim is released after the retention, not a second before', () => {
  const b = c('tenant-b', 'waiting');
  const vacant = ledger({
    '10.0.0.5': { namespace: 'tenant-a', vacantSince: '2026-03-01T00:00:00Z' },
  });
  const early = settleClaims([b], vacant, T0 + 24 * HOUR - 1000, 24 * HOUR);
  assert.equal(early.holders.size, 0);
  assert.equal(early.nextExpiryMs, 1000);
  const due = settleClaims([b], vacant, T0 + 24 * HOUR, 24 * HOUR);
  assert.equal(due.holders.get('10.0.0.5'), b);
  assert.deepEqual(due.expired, ['10.0.0.5']);
  assert.deepEqual(due.ledger.get('10.0.0.5'), { namespace: 'tenant-b' });
});

test('retention 0 keeps a vacant claim until the admin deletes it', () => {
  const b = c('tenant-b', 'waiting');
  const vacant = ledger({
    '10.0.0.5': { namespace: 'tenant-a', vacantSince: '2020-01-01T00:00:00Z' },
  });
  const s = settleClaims([b], vacant, T0, 0);
  assert.equal(s.holders.size, 0);
  assert.equal(s.nextExpiryMs, undefined);
  // The admin's release is the key gone from the ledger.
  assert.equal(settleClaims([b], new Map(), T0, 0).holders.get('10.0.0.5'), b);
});

test('a claim with nobody wanting the IP is kept vacant, and dropped after the retention', () => {
  const vacant = settleClaims([], ledger({ '10.0.0.9': { namespace: 'a' } }), T0, HOUR);
  assert.ok(vacant.ledger.get('10.0.0.9')?.vacantSince);
  assert.equal(settleClaims([], vacant.ledger, T0 + HOUR, HOUR).ledger.size, 0);
});

test('claims round-trip through ConfigMap data; junk and foreign keys are ignored', () => {
  for (const claim of [{ namespace: 'a' }, { namespace: 'a', vacantSince: '2026-03-01T00:00:00Z' }])
    assert.deepEqual(parseClaim(formatClaim(claim)), claim);
  for (const bad of ['', '{', '{}', '{"namespace":5}', '{"namespace":"a","vacantSince":1}'])
    assert.equal(parseClaim(bad), null, bad);
  const read = readClaimLedger(
    [
      { name: 'rtftp-configs-20', data: { '10.0.0.1.claim': formatClaim({ namespace: 'stale' }) } },
      {
        name: 'rtftp-configs-01',
        data: {
          '10.0.0.1.claim': formatClaim({ namespace: 'current' }),
          'fd00__5.claim': formatClaim({ namespace: 'v6' }),
          '10.0.0.1.nbd': '{}',
          'not-an-ip.claim': formatClaim({ namespace: 'x' }),
          '10.0.0.2.claim': 'junk',
          [claimKeyOf(serialClaimId('1a2b3c4d'))]: formatClaim({ namespace: 'pi' }),
          'serial-1A2B3C4E.claim': formatClaim({ namespace: 'admin-typed' }),
          'serial-1a2b3c4.claim': formatClaim({ namespace: 'x' }),
        },
      },
    ],
    (name) => name !== 'rtftp-configs-20',
  );
  assert.deepEqual(
    [...read],
    [
      ['10.0.0.1', { namespace: 'current' }],
      ['fd00::5', { namespace: 'v6' }],
      ['serial-1a2b3c4d', { namespace: 'pi' }],
      ['serial-1a2b3c4e', { namespace: 'admin-typed' }],
    ],
  );
  assert.equal(claimKeyOf(serialClaimId('1a2b3c4d')), 'serial-1a2b3c4d.claim');
});
