import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { AdmissionLimits } from '../admission/admission.ts';
import { AdmissionAuthority } from './admission-authority.ts';
import type { TicketRef } from './admission-authority.ts';
import type { AdmitAnswer, FromWorker, ToWorker } from './messages.ts';
import { RemoteAdmission } from './remote-admission.ts';

import { OPEN_LIMITS as LIMITS } from '../admission/open-limits.ts';

function authority(limits: Partial<AdmissionLimits> = {}) {
  const evicted: TicketRef[] = [];
  const a = new AdmissionAuthority({ ...LIMITS, ...limits }, (ref) => evicted.push(ref));
  return { a, evicted };
}

function granted(answer: AdmitAnswer): number {
  assert.ok(answer.ok, `refused: ${answer.ok ? '' : answer.reason}`);
  return answer.ticket;
}

test('limits stay global across workers: overall, per subnet and the memory budget', () => {
  const { a } = authority({ maxActive: 2, maxActivePerSubnet: 2, memoryBudgetBytes: 3000 });
  const t0 = granted(a.request(0, '10.0.0.1'));
  const t1 = granted(a.request(1, '10.0.0.2'));
  assert.deepEqual(a.prove(0, t0, 1000), { ok: true });
  assert.deepEqual(a.prove(1, t1, 1000), { ok: true });
  // A third client, on either worker, finds the server full.
  assert.deepEqual(a.request(1, '10.0.1.3'), { ok: false, reason: 'server-busy' });
  assert.deepEqual(a.request(0, '10.0.0.4'), { ok: false, reason: 'server-busy' });
  a.release(1, t1);
  const t2 = granted(a.request(0, '10.0.1.3'));
  assert.deepEqual(a.prove(0, t2, 2500), { ok: false, reason: 'memory-budget' });
  assert.equal(a.memoryReserved, 1000);
});

test('the pending pool is one: a flood on one worker evicts the oldest pending request, on the worker holding it', () => {
  const { a, evicted } = authority({ maxPendingPerSubnet: 2 });
  const first = granted(a.request(1, '10.0.0.7'));
  granted(a.request(0, '10.0.0.8'));
  granted(a.request(0, '10.0.0.9'));
  assert.deepEqual(evicted, [{ worker: 1, ticket: first }]);
  // Evicted means released: proving it now is refused, and its release changes nothing.
  assert.deepEqual(a.prove(1, first, 10), { ok: false, reason: 'server-busy' });
  a.release(1, first);
  assert.equal(a.pending, 2);
});

test("a worker that died frees everything it held; another worker's tickets stay", () => {
  const { a } = authority({ maxActive: 3 });
  const mine = [granted(a.request(0, '10.0.0.1')), granted(a.request(0, '10.0.0.2'))];
  for (const t of mine) a.prove(0, t, 100);
  const other = granted(a.request(1, '10.0.0.3'));
  a.prove(1, other, 100);
  assert.equal(a.memoryReserved, 300);
  a.releaseWorker(0);
  assert.equal(a.memoryReserved, 100);
  assert.deepEqual(a.prove(0, mine[0]!, 100), { ok: false, reason: 'server-busy' });
  granted(a.request(1, '10.0.0.4'));
  granted(a.request(1, '10.0.0.5'));
});

/** A worker's proxy wired to an authority through a message loop, like the threads are. */
function wired(limits: Partial<AdmissionLimits> = {}, worker = 0) {
  const { a } = authority(limits);
  const box: { proxy?: RemoteAdmission<string> } = {};
  const toWorker = (m: ToWorker) => setImmediate(() => box.proxy!.handle(m));
  const toMain = (m: FromWorker) =>
    setImmediate(() => {
      if (m.type === 'admit')
        toWorker({ type: 'admitted', id: m.id, answer: a.request(worker, m.client) });
      else if (m.type === 'prove')
        toWorker({ type: 'proved', id: m.id, answer: a.prove(worker, m.ticket, m.bytes) });
      else if (m.type === 'release') a.release(worker, m.ticket);
    });
  const proxy = new RemoteAdmission<string>(toMain, 200);
  box.proxy = proxy;
  return { a, proxy };
}

test('a worker asks, proves and releases by message, and the authority counts it', async () => {
  const { a, proxy } = wired({ maxActive: 1 });
  const r = await proxy.request('10.0.0.1', 'one');
  assert.ok(r.ok);
  assert.equal(r.ticket.subnet, '10.0.0.0/24');
  assert.deepEqual(await proxy.prove(r.ticket, 500), { ok: true });
  assert.equal(a.memoryReserved, 500);
  assert.deepEqual(await proxy.request('10.0.0.2', 'two'), { ok: false, reason: 'server-busy' });
  proxy.release(r.ticket);
  await new Promise((resolve) => setImmediate(resolve));
  assert.equal(a.memoryReserved, 0);
});

test('no answer in time is "server busy", and a ticket granted too late is given back', async () => {
  const posted: FromWorker[] = [];
  const proxy = new RemoteAdmission<string>((m) => posted.push(m), 50);
  assert.deepEqual(await proxy.request('10.0.0.1', 'x'), { ok: false, reason: 'server-busy' });
  const admit = posted[0];
  assert.equal(admit?.type, 'admit');
  proxy.handle({
    type: 'admitted',
    id: admit.type === 'admit' ? admit.id : -1,
    answer: { ok: true, ticket: 41, subnet: '10.0.0.0/24' },
  });
  assert.deepEqual(posted[1], { type: 'release', ticket: 41 });
});

test('an eviction reaches the transfer that held the ticket, once', async () => {
  const { proxy } = wired();
  const r = await proxy.request('10.0.0.1', 'victim');
  assert.ok(r.ok);
  const seen: string[] = [];
  proxy.onEvicted((data) => seen.push(data));
  const id = (r.ticket as unknown as { id: number }).id;
  proxy.handle({ type: 'evicted', ticket: id });
  proxy.handle({ type: 'evicted', ticket: id });
  assert.deepEqual(seen, ['victim']);
});
