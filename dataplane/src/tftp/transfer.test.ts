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
  /** Drops the first ACK of each of these blocks (a deterministic loss). */
  dropFirstAckOf?: number[];
}

interface ClientOptions {
  abortsAfterOack?: boolean;
  /**
   * Like atftp: a duplicate DATA is not acknowledged again, and any packet received
   * restarts the client's own timer, so only a silence longer than that timer makes it
   * ACK again.
   */
  ignoresDuplicates?: boolean;
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
  /** Highest block the machine asked to read before the client proved itself. */
  readBeforeProof: number;
  claims: number;
}

function simulate(
  file: Buffer,
  settings: Partial<TransferSettings>,
  link: LinkOptions,
  client: ClientOptions = {},
): SimResult {
  const s: TransferSettings = {
    blksize: 512,
    windowsize: 1,
    timeoutMs: 100,
    maxIntervalMs: 800,
    stallLimitMs: 60_000,
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
  let readBeforeProof = 0;
  let claims = 0;
  const dropsLeft = new Set(link.dropFirstAckOf ?? []);
  const blockData = (n: number) =>
    file.subarray((n - 1) * s.blksize, Math.min(file.length, n * s.blksize));

  // Receiver
  const received: Buffer[] = [];
  let expected = 1; // absolute
  let inWindow = 0;
  let clientComplete = false;
  let clientTimerGen = 0;
  const clientAck = (abs: number) => {
    if (dropsLeft.delete(abs)) return;
    deliver(() => dispatch({ type: 'ack', block: abs & 0xffff }));
  };
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
    if (client.ignoresDuplicates && !clientComplete) armClientTimer();
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
    } else if (s.windowsize === 1 && abs === expected - 1 && !client.ignoresDuplicates) {
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
            if (client.abortsAfterOack)
              dispatch({ type: 'client-error', code: 8, message: 'probe done' });
            else {
              clientAck(0);
              armClientTimer();
            }
          });
          break;
        case 'read': {
          if (!state.proven) readBeforeProof = Math.max(readBeforeProof, a.upTo);
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
        case 'claim':
          claims++;
          dispatch({ type: 'claimed' });
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
    readBeforeProof,
    claims,
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
  const r = simulate(fileOf(100), { sendOack: true, tsizeRequested: true }, clean, {
    abortsAfterOack: true,
  });
  assert.equal(r.outcome, 'probe');
  assert.equal(r.dataSent, 0);
});

test('an abort after an OACK without tsize is an option refusal, not a probe', () => {
  const r = simulate(fileOf(100), { sendOack: true }, clean, { abortsAfterOack: true });
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

const lockStep = (settings: Partial<TransferSettings> = {}) =>
  createTransfer({
    blksize: 512,
    windowsize: 1,
    timeoutMs: 100,
    maxIntervalMs: 800,
    stallLimitMs: 60_000,
    maxRetries: 3,
    sendOack: false,
    tsizeRequested: false,
    readAheadBlocks: 2,
    ...settings,
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

/** Drives a transfer by hand: each step's actions, flattened to their types and fields. */
function timers(actions: ReturnType<typeof step>): number[] {
  return actions.flatMap((a) => (a.type === 'arm-timer' ? [a.ms] : []));
}

test('retransmission backs off: doubles per timeout, capped, and stops at the stall limit', () => {
  const s = lockStep({ maxRetries: 100, stallLimitMs: 3000 });
  const armed = timers(step(s, { type: 'start' }));
  armed.push(...timers(step(s, { type: 'read-done', upTo: 2, eof: false })));
  let end: ReturnType<typeof step> = [];
  for (let i = 0; i < 20 && s.phase !== 'done'; i++) {
    end = step(s, { type: 'timeout' });
    armed.push(...timers(end));
  }
  // 100 + 200 + 400 + 800 + 800 + 700 = 3000: the last wait is cut to the stall limit.
  assert.deepEqual(armed, [100, 100, 200, 400, 800, 800, 700]);
  assert.equal(s.retransmits, 5);
  assert.deepEqual(
    end.map((a) => a.type),
    ['send-error', 'finish'],
  );
  const finish = end.find((a) => a.type === 'finish');
  assert.ok(finish?.type === 'finish' && finish.outcome === 'timeout');
  assert.match(finish.detail, /no progress for 3000 ms \(6 timeouts\)/);
});

test('progress resets the backoff: the next loss starts again at the first interval', () => {
  const s = lockStep({ maxRetries: 100 });
  step(s, { type: 'start' });
  step(s, { type: 'read-done', upTo: 1, eof: false });
  step(s, { type: 'timeout' });
  step(s, { type: 'timeout' });
  assert.equal(s.intervalMs, 400);
  step(s, { type: 'ack', block: 1 });
  step(s, { type: 'claimed' });
  const sent = step(s, { type: 'read-done', upTo: 3, eof: false });
  assert.deepEqual(timers(sent), [100]);
  assert.equal(s.waitedMs, 0);
});

test('waiting for ACK 0 the first timeout is quiet; a repeated RRQ after it gets the OACK at once', () => {
  const s = lockStep({ sendOack: true, maxRetries: 100 });
  assert.deepEqual(timers(step(s, { type: 'start' })), [100]);
  assert.deepEqual(step(s, { type: 'request-repeated' }), [], 'a repeat the network made');
  assert.deepEqual(step(s, { type: 'timeout' }), [{ type: 'arm-timer', ms: 200 }]);
  assert.deepEqual(step(s, { type: 'request-repeated' }), [
    { type: 'send-oack', retransmit: true },
  ]);
  assert.deepEqual(step(s, { type: 'request-repeated' }), [], 'once per timeout');
  // The client has just got the OACK: its own ACK 0 retransmission comes first again.
  assert.deepEqual(step(s, { type: 'timeout' }), [{ type: 'arm-timer', ms: 400 }]);
  assert.deepEqual(
    step(s, { type: 'timeout' }).map((a) => a.type),
    ['send-oack', 'arm-timer'],
  );
});

test('without options a repeated RRQ after a timeout gets DATA 1 again; after ACK 1 it is noise', () => {
  const s = lockStep({ maxRetries: 100 });
  step(s, { type: 'start' });
  step(s, { type: 'read-done', upTo: 1, eof: false });
  assert.deepEqual(step(s, { type: 'request-repeated' }), []);
  step(s, { type: 'timeout' });
  assert.deepEqual(step(s, { type: 'request-repeated' }), [
    { type: 'send-data', block: 1, retransmit: true },
  ]);
  step(s, { type: 'ack', block: 1 });
  step(s, { type: 'claimed' });
  step(s, { type: 'read-done', upTo: 3, eof: false });
  step(s, { type: 'timeout' });
  assert.deepEqual(step(s, { type: 'request-repeated' }), []);
});

test('a read that never completes is abandoned at the stall limit', () => {
  const s = lockStep({ maxRetries: 100, stallLimitMs: 1000 });
  step(s, { type: 'start' }); // the read of block 1 never answers
  let outcome: string | undefined;
  for (let i = 0; i < 50 && !outcome; i++)
    for (const a of step(s, { type: 'timeout' })) if (a.type === 'finish') outcome = a.outcome;
  assert.equal(outcome, 'timeout');
});

test('a client that ignores duplicates recovers a lost ACK through backoff, not at a fixed interval', () => {
  const file = fileOf(512 * 10 + 1);
  // The client's own timer (250 ms) restarts on every packet it gets, duplicates included.
  const link = { ...clean, dropFirstAckOf: [3] };
  const backoff = simulate(file, { maxRetries: 8 }, link, { ignoresDuplicates: true });
  assert.equal(backoff.outcome, 'completed');
  assert.ok(backoff.received.equals(file));
  const fixed = simulate(file, { maxRetries: 8, maxIntervalMs: 100 }, link, {
    ignoresDuplicates: true,
  });
  assert.equal(fixed.outcome, 'timeout', 'a fixed 100 ms interval never lets the client time out');
});

for (const ignoresDuplicates of [false, true]) {
  for (const windowsize of [1, 8]) {
    test(`3% loss, 2% duplication, 2% reordering, windowsize ${windowsize}${ignoresDuplicates ? ', a client ignoring duplicates' : ''}: 50 of 50 complete`, () => {
      for (let seed = 1; seed <= 50; seed++) {
        const file = fileOf(30_000, seed);
        const r = simulate(
          file,
          { blksize: 1024, windowsize, sendOack: true, maxRetries: 8 },
          { loss: 0.03, duplicate: 0.02, reorder: 0.02, seed },
          { ignoresDuplicates },
        );
        assert.ok(r.clientComplete && r.received.equals(file), `seed ${seed}`);
      }
    });
  }
}

test('with an OACK nothing is read before ACK 0; then one claim, then the read-ahead', () => {
  const s = lockStep({ sendOack: true, windowsize: 4, readAheadBlocks: 8 });
  const started = step(s, { type: 'start' });
  assert.ok(!started.some((a) => a.type === 'read'));
  assert.deepEqual(
    step(s, { type: 'timeout' }).filter((a) => a.type === 'read'),
    [],
  );
  assert.deepEqual(step(s, { type: 'ack', block: 0 }), [{ type: 'claim' }]);
  assert.equal(s.phase, 'claiming');
  assert.deepEqual(step(s, { type: 'ack', block: 0 }), [], 'a repeated ACK 0 changes nothing');
  assert.deepEqual(step(s, { type: 'claimed' }), [{ type: 'read', upTo: 8 }]);
});

test('without options only block 1 is read before ACK 1; the claim comes with ACK 1', () => {
  const file = fileOf(512 * 40 + 3);
  const r = simulate(file, { readAheadBlocks: 16 }, clean);
  assert.equal(r.outcome, 'completed');
  assert.ok(r.received.equals(file));
  assert.equal(r.readBeforeProof, 1);
  assert.equal(r.claims, 1);
  const windowed = simulate(file, { sendOack: true, windowsize: 8, readAheadBlocks: 16 }, clean);
  assert.deepEqual([windowed.readBeforeProof, windowed.claims], [0, 1]);
});

test('a one-block file completes on ACK 1 without ever claiming', () => {
  const r = simulate(fileOf(300), {}, clean);
  assert.deepEqual([r.outcome, r.claims], ['completed', 0]);
});

test('a refused claim ends the transfer with ERROR 0 and outcome refused', () => {
  const s = lockStep({ sendOack: true });
  step(s, { type: 'start' });
  step(s, { type: 'ack', block: 0 });
  assert.deepEqual(step(s, { type: 'refused', message: 'server busy' }), [
    { type: 'send-error', code: 0, message: 'server busy' },
    { type: 'finish', outcome: 'refused', detail: 'server busy' },
  ]);
});

test('an unproven transfer can be refused (evicted) while it waits for its first ACK', () => {
  const s = lockStep();
  step(s, { type: 'start' });
  step(s, { type: 'read-done', upTo: 1, eof: false });
  const actions = step(s, { type: 'refused', message: 'server busy' });
  assert.deepEqual(
    actions.map((a) => a.type),
    ['send-error', 'finish'],
  );
  assert.equal(s.phase, 'done');
});

test('once the timer fired, the first duplicate ACK resends the window at once, the next ones do not', () => {
  const s = lockStep({ maxRetries: 100 });
  step(s, { type: 'start' });
  step(s, { type: 'read-done', upTo: 2, eof: false });
  step(s, { type: 'ack', block: 1 });
  step(s, { type: 'claimed' });
  step(s, { type: 'read-done', upTo: 3, eof: false }); // DATA 2 sent (and lost)
  const sends = (a: ReturnType<typeof step>) => a.filter((x) => x.type === 'send-data').length;
  assert.equal(sends(step(s, { type: 'ack', block: 1 })), 0, 'before any timeout: ignored');
  assert.equal(sends(step(s, { type: 'timeout' })), 1);
  assert.equal(sends(step(s, { type: 'ack', block: 1 })), 1, 'the client is waiting: resend now');
  assert.equal(sends(step(s, { type: 'ack', block: 1 })), 0, 'once per timeout');
  // Progress: a late duplicate of an older ACK is stale and ignored (no Apprentice cascade).
  step(s, { type: 'ack', block: 2 });
  assert.equal(sends(step(s, { type: 'ack', block: 2 })), 0);
});

test('a link that delays packets past the timeout causes no Sorcerer’s Apprentice cascade', () => {
  const file = fileOf(512 * 200 + 1);
  const blocks = 201;
  // Every packet is duplicated and a third are delayed by up to 5 ms; with a 3 ms timer the
  // server times out all the time, and the client ACKs every duplicate DATA it gets.
  const r = simulate(
    file,
    { timeoutMs: 3, maxIntervalMs: 3, maxRetries: 1000, stallLimitMs: 1e9 },
    { loss: 0, duplicate: 1, reorder: 0.3, seed: 5 },
  );
  assert.equal(r.outcome, 'completed');
  assert.ok(r.received.equals(file));
  assert.ok(r.dataSent < blocks * 3, `${r.dataSent} DATA packets for ${blocks} blocks`);
});
