/**
 * The transfer state machine on a simulated link: virtual time, a seeded PRNG for loss,
 * duplication and reordering, and an RFC 1350 / RFC 7440 receiver on the other end.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createTransfer, step } from './transfer.ts';
import type { Outcome, TransferEvent, TransferSettings } from './transfer.ts';

interface LinkOptions {
  loss: number;
  duplicate: number;
  reorder: number;
  seed: number;
}

function prng(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return (s >>> 0) / 0x100000000;
  };
}

/** Binary min-heap: the simulator's event queue. */
class EventHeap<T> {
  private readonly items: T[] = [];
  constructor(private readonly less: (a: T, b: T) => number) {}
  get size(): number {
    return this.items.length;
  }
  push(x: T): void {
    const a = this.items;
    a.push(x);
    let i = a.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (this.less(a[i]!, a[p]!) >= 0) break;
      [a[i], a[p]] = [a[p]!, a[i]!];
      i = p;
    }
  }
  pop(): T | undefined {
    const a = this.items;
    const top = a[0];
    const last = a.pop();
    if (a.length === 0 || last === undefined) return top;
    a[0] = last;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < a.length && this.less(a[l]!, a[m]!) < 0) m = l;
      if (r < a.length && this.less(a[r]!, a[m]!) < 0) m = r;
      if (m === i) break;
      [a[i], a[m]] = [a[m]!, a[i]!];
      i = m;
    }
    return top;
  }
}

interface SimResult {
  outcome: Outcome | null;
  received: Buffer;
  dataSent: number;
  retransmits: number;
  clientComplete: boolean;
}

function simulate(
  file: Buffer,
  settings: Partial<TransferSettings>,
  link: LinkOptions,
  clientAbortsAfterOack = false,
): SimResult {
  const s: TransferSettings = {
    blksize: 512,
    windowsize: 1,
    timeoutMs: 100,
    maxRetries: 8,
    sendOack: false,
    tsizeRequested: false,
    readAheadBlocks: 2,
    ...settings,
  };
  if (s.readAheadBlocks < s.windowsize) s.readAheadBlocks = 2 * s.windowsize;
  const rand = prng(link.seed);
  const state = createTransfer(s);
  let now = 0;
  type Ev = { at: number; seq: number; run: () => void };
  const queue = new EventHeap<Ev>((x, y) => x.at - y.at || x.seq - y.seq);
  let seq = 0;
  const at = (t: number, run: () => void) => queue.push({ at: t, seq: seq++, run });
  const deliver = (run: () => void) => {
    if (rand() < link.loss) return;
    const delay = 1 + (rand() < link.reorder ? rand() * 5 : 0);
    at(now + delay, run);
    if (rand() < link.duplicate) at(now + delay + rand() * 3, run);
  };
  let timerAt = -1;
  let timerGen = 0;
  let outcome: Outcome | null = null;
  let dataSent = 0;
  const blockData = (n: number) =>
    file.subarray((n - 1) * s.blksize, Math.min(file.length, n * s.blksize));

  // Receiver
  const received: Buffer[] = [];
  let expected = 1; // absolute
  let inWindow = 0;
  let clientComplete = false;
  let clientTimerGen = 0;
  const clientAck = (abs: number) => deliver(() => dispatch({ type: 'ack', block: abs & 0xffff }));
  const armClientTimer = () => {
    const gen = ++clientTimerGen;
    at(now + 250, () => {
      if (gen !== clientTimerGen || clientComplete) return;
      clientAck(expected - 1); // RFC 7440 §4: on timeout, ACK the last block received
      armClientTimer();
    });
  };
  const onData = (wire: number, payload: Buffer) => {
    const abs = expected - 1 + ((wire - (expected - 1) + 0x10000) & 0xffff);
    if (clientComplete) {
      if (abs === expected - 1) clientAck(abs); // dally: re-ACK the final block
      return;
    }
    if (abs === expected) {
      received.push(Buffer.from(payload));
      expected++;
      inWindow++;
      const last = payload.length < s.blksize;
      if (last) clientComplete = true;
      if (last || inWindow >= s.windowsize) {
        inWindow = 0;
        clientAck(abs);
      }
      armClientTimer();
    } else if (abs > expected) {
      // gap: tell the sender where we are (RFC 7440 §4), restart the window count
      inWindow = 0;
      clientAck(expected - 1);
    } else if (s.windowsize === 1 && abs === expected - 1) {
      clientAck(abs); // RFC 1350 receivers re-ACK a duplicate: the Sorcerer's Apprentice trigger
    }
  };

  function dispatch(e: TransferEvent) {
    for (const a of step(state, e)) {
      switch (a.type) {
        case 'send-data': {
          dataSent++;
          const payload = blockData(a.block);
          const wire = a.block & 0xffff;
          deliver(() => onData(wire, payload));
          break;
        }
        case 'send-oack':
          deliver(() => {
            if (clientAbortsAfterOack)
              dispatch({ type: 'client-error', code: 8, message: 'probe done' });
            else {
              clientAck(0);
              armClientTimer();
            }
          });
          break;
        case 'read': {
          const last = Math.floor(file.length / s.blksize) + 1;
          const upTo = Math.min(a.upTo, last);
          at(now + 0.01, () => dispatch({ type: 'read-done', upTo, eof: upTo === last }));
          break;
        }
        case 'arm-timer': {
          timerAt = now + a.ms;
          const gen = ++timerGen;
          at(timerAt, () => gen === timerGen && dispatch({ type: 'timeout' }));
          break;
        }
        case 'finish':
          outcome = a.outcome;
          break;
        case 'send-error':
          break;
      }
    }
  }
  dispatch({ type: 'start' });
  let steps = 0;
  while (queue.size && outcome === null && steps++ < 5_000_000) {
    const ev = queue.pop()!;
    now = ev.at;
    ev.run();
  }
  return {
    outcome,
    received: Buffer.concat(received),
    dataSent,
    retransmits: state.retransmits,
    clientComplete,
  };
}

function fileOf(n: number, seed = 1): Buffer {
  const r = prng(seed);
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = Math.floor(r() * 256);
  return b;
}

const clean: LinkOptions = { loss: 0, duplicate: 0, reorder: 0, seed: 1 };

test('lock-step transfer on a clean link sends each block once', () => {
  const file = fileOf(10_000);
  const r = simulate(file, {}, clean);
  assert.equal(r.outcome, 'completed');
  assert.deepEqual(r.received, file);
  assert.equal(r.dataSent, Math.floor(10_000 / 512) + 1);
});

test('a file that is an exact multiple of blksize ends with an empty block', () => {
  const file = fileOf(1024);
  const r = simulate(file, {}, clean);
  assert.equal(r.outcome, 'completed');
  assert.deepEqual(r.received, file);
  assert.equal(r.dataSent, 3);
});

test('an empty file is one empty DATA block', () => {
  const r = simulate(Buffer.alloc(0), {}, clean);
  assert.equal(r.outcome, 'completed');
  assert.equal(r.dataSent, 1);
});

test("duplicated ACKs never cause resends (no Sorcerer's Apprentice)", () => {
  const file = fileOf(50_000);
  const r = simulate(file, {}, { loss: 0, duplicate: 1, reorder: 0, seed: 3 });
  assert.equal(r.outcome, 'completed');
  assert.deepEqual(r.received, file);
  assert.equal(r.retransmits, 0);
  assert.equal(r.dataSent, Math.floor(50_000 / 512) + 1);
});

test('block numbers roll over past 65535', () => {
  const file = fileOf(8 * 70_000 + 3);
  const r = simulate(file, { blksize: 8 }, clean);
  assert.equal(r.outcome, 'completed');
  assert.ok(r.received.equals(file));
});

test('windowed transfer with rollover and a lossy, duplicating, reordering link', () => {
  const file = fileOf(16 * 70_000 + 5, 9);
  const r = simulate(
    file,
    { blksize: 16, windowsize: 16, readAheadBlocks: 32 },
    { loss: 0.01, duplicate: 0.02, reorder: 0.02, seed: 11 },
  );
  assert.equal(r.outcome, 'completed');
  assert.ok(r.received.equals(file));
  assert.ok(r.retransmits > 0, 'the lossy link must have cost retransmissions');
});

for (const seed of [1, 2, 3, 4, 5, 6, 7, 8]) {
  for (const windowsize of [1, 4]) {
    test(`5% loss both ways, windowsize ${windowsize}, seed ${seed}: byte-identical`, () => {
      const file = fileOf(40_000, seed);
      const r = simulate(
        file,
        { blksize: 1024, windowsize, sendOack: true },
        { loss: 0.05, duplicate: 0.05, reorder: 0.05, seed },
      );
      assert.ok(r.clientComplete);
      assert.ok(r.received.equals(file));
      assert.ok(r.outcome === 'completed' || r.outcome === 'timeout', String(r.outcome));
    });
  }
}

test('a client that aborts after the OACK of a tsize request is a probe', () => {
  const r = simulate(fileOf(100), { sendOack: true, tsizeRequested: true }, clean, true);
  assert.equal(r.outcome, 'probe');
  assert.equal(r.dataSent, 0);
});

test('an abort after an OACK without tsize is an option refusal, not a probe', () => {
  const r = simulate(fileOf(100), { sendOack: true }, clean, true);
  assert.equal(r.outcome, 'option-refused');
});

test('a silent client times out after the bounded number of retransmissions', () => {
  const r = simulate(
    fileOf(5000),
    { maxRetries: 3 },
    { loss: 1, duplicate: 0, reorder: 0, seed: 1 },
  );
  assert.equal(r.outcome, 'timeout');
  assert.equal(r.retransmits, 3);
});

const lockStep = () =>
  createTransfer({
    blksize: 512,
    windowsize: 1,
    timeoutMs: 100,
    maxRetries: 3,
    sendOack: false,
    tsizeRequested: false,
    readAheadBlocks: 2,
  });

test('an ACK for a block never sent is ignored', () => {
  const s = lockStep();
  step(s, { type: 'start' });
  step(s, { type: 'read-done', upTo: 2, eof: false });
  const actions = step(s, { type: 'ack', block: 5 });
  assert.deepEqual(actions, []);
  assert.equal(s.windowStart, 1);
});

test('a read failure ends the transfer with an ERROR to the client', () => {
  const s = lockStep();
  step(s, { type: 'start' });
  const actions = step(s, { type: 'read-failed', message: 'EIO' });
  assert.deepEqual(
    actions.map((a) => a.type),
    ['send-error', 'finish'],
  );
});
