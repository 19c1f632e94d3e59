import { test } from 'node:test';
import assert from 'node:assert/strict';
import { pino } from 'pino';
import { HostResolver } from './host-resolver.ts';

test('looks names up once per TTL, keeps the last good answer through a failure, forgets unused names', async () => {
  let now = 0;
  const answers: Record<string, string[] | Error> = { 'a.lab': ['10.0.0.2', '10.0.0.1'] };
  let lookups = 0;
  const r = new HostResolver({
    log: pino({ level: 'silent' }),
    ttlMs: 30_000,
    now: () => now,
    lookup: async (h) => {
      lookups++;
      const a = answers[h];
      if (a instanceof Error || a === undefined)
        throw a ?? Object.assign(new Error('x'), { code: 'ENOTFOUND' });
      return [...a];
    },
  });
  assert.equal(await r.refresh(new Set(['a.lab', 'never.lab'])), true);
  assert.deepEqual(
    r.get('a.lab'),
    { addresses: ['10.0.0.1', '10.0.0.2'] },
    'sorted: order is no change',
  );
  assert.deepEqual(r.get('never.lab'), { error: 'ENOTFOUND' });
  assert.equal(
    await r.refresh(new Set(['a.lab', 'never.lab'])),
    false,
    'fresh: not looked up again',
  );
  assert.equal(lookups, 2);
  now = 30_000;
  answers['a.lab'] = Object.assign(new Error('down'), { code: 'EAI_AGAIN' });
  assert.equal(await r.refresh(new Set(['a.lab'])), false, 'a failure keeps the last answer');
  assert.deepEqual(r.get('a.lab'), { addresses: ['10.0.0.1', '10.0.0.2'] });
  assert.equal(r.get('never.lab'), undefined, 'unused names are forgotten');
  now = 60_000;
  answers['a.lab'] = ['127.0.0.1'];
  assert.equal(await r.refresh(new Set(['a.lab'])), true, 'a name that moved is news');
  assert.deepEqual(r.get('a.lab'), { addresses: ['127.0.0.1'] });
});
