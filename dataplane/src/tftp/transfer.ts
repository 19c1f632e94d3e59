/**
 * One read transfer as a pure state machine: `step(state, event)` returns the actions
 * the shell must carry out (send, read, arm the timer, finish). It does no I/O, reads no
 * clock and holds no file data — the shell owns the socket, the timer and the buffered
 * blocks — so it can be driven packet by packet in tests and on a simulated link.
 *
 * Blocks are numbered absolutely from 1; the wire carries `n & 0xffff` (block numbers
 * roll over 65535 → 0, so files of any size transfer). RFC 7440 windowing: up to
 * `windowsize` blocks are sent before waiting for an ACK; windowsize 1 is RFC 1350
 * lock-step. A duplicate ACK never triggers a resend (the Sorcerer's Apprentice bug,
 * RFC 1123 §4.2.3.1): only the timer does — with one exception that cannot cascade: once
 * the timer has fired without progress, the client's next repeat — a duplicate ACK of the
 * block before the window, or its RRQ again before any ACK — shows it is alive and still
 * waiting, and what it waits for is resent at once (once per timeout). On a clean link
 * the timer never fires, so that never happens.
 *
 * The OACK is special: some clients (atftp) abort on a second OACK, and a client whose
 * ACK 0 was lost sends it again after a timeout of its own. So the first timeout after
 * an OACK is quiet; the OACK goes again when the client repeats its RRQ (it never got the
 * OACK: the timeout after that resend is quiet again) or at the next timeout.
 *
 * Retransmission backs off exponentially (RFC 1123 §4.2.3.2): the first interval is the
 * negotiated (or default) timeout, each timeout in a row doubles it up to a cap, and the
 * transfer is abandoned once it has gone `stallLimitMs` without progress (or after
 * `maxRetries` timeouts in a row, whichever comes first). A fixed interval never lets a
 * client that ignores duplicates (atftp) reach its own timeout and ACK again.
 *
 * Nothing is read before the client has proven it exists (docs/admission.md): with an
 * OACK nothing until ACK 0; without options only block 1, until ACK 1. Then the machine
 * asks the shell to `claim` the transfer's slot and memory, and goes on once `claimed`.
 */

export interface TransferSettings {
  blksize: number;
  windowsize: number;
  /** The first retransmission interval: the negotiated timeout, or the server's default. */
  timeoutMs: number;
  /** Cap of the backed-off interval (an interval is never shorter than `timeoutMs`). */
  maxIntervalMs: number;
  /** Time without progress after which the transfer is abandoned: bounds the total wait. */
  stallLimitMs: number;
  /** Timeouts in a row without progress before the transfer is abandoned. */
  maxRetries: number;
  /** Send an OACK first and wait for ACK 0 (the client sent options we accepted). */
  sendOack: boolean;
  /** The request carried tsize: an abort right after the OACK is a size probe. */
  tsizeRequested: boolean;
  /**
   * Blocks the shell can hold at once (≥ windowsize): the window being sent plus read-ahead.
   * Block n lives in slot n % readAheadBlocks until it is acknowledged.
   */
  readAheadBlocks: number;
}

export type Outcome =
  | 'completed'
  | 'probe'
  | 'aborted'
  | 'option-refused'
  | 'timeout'
  | 'failed'
  /** Admission turned it away: its claim was refused, or it was evicted while unproven. */
  | 'refused';

export interface TransferState {
  readonly settings: TransferSettings;
  /** `claiming`: the client just proved itself; waiting for the shell's `claimed`/`refused`. */
  phase: 'new' | 'oack' | 'data' | 'claiming' | 'done';
  /** The client answered once (ACK 0 or ACK 1) and the transfer holds its claim. */
  proven: boolean;
  /** First block not yet acknowledged. */
  windowStart: number;
  /** Highest block sent in the current pass over the window (windowStart - 1 when none). */
  sentUpTo: number;
  /** Highest block the shell has buffered. */
  readyUpTo: number;
  /** Highest block asked of the shell. */
  readRequested: number;
  readInFlight: boolean;
  /** The final block (the first one shorter than blksize), once the shell has read it. */
  lastBlock: number | null;
  retries: number;
  retransmits: number;
  /** The interval the next retransmission timer gets (backs off on timeouts in a row). */
  intervalMs: number;
  /** The interval the running timer was armed with. */
  armedMs: number;
  /** Timer time elapsed since the last progress. */
  waitedMs: number;
  /** The timer fired since the last progress: the client's next repeat gets a resend at once. */
  resendOnRepeat: boolean;
  /** The next timeout waiting for ACK 0 resends nothing (the OACK just went out). */
  oackQuiet: boolean;
}

export type TransferEvent =
  | { type: 'start' }
  | { type: 'ack'; block: number }
  | { type: 'client-error'; code: number; message: string }
  | { type: 'timeout' }
  /** The client sent its RRQ again (the server absorbs it: one transfer per client port). */
  | { type: 'request-repeated' }
  | { type: 'read-done'; upTo: number; eof: boolean }
  | { type: 'read-failed'; message: string }
  /** The shell's answer to `claim`. */
  | { type: 'claimed' }
  /** Admission turned the transfer away (its claim, or an eviction): ERROR 0 with `message`. */
  | { type: 'refused'; message: string }
  /**
   * The client started over from the same port: the transfer ends without a word (an
   * ERROR from this TID could pass for the answer to the client's new request).
   */
  | { type: 'superseded' }
  | { type: 'abort'; code: number; message: string };

export type TransferAction =
  | { type: 'send-oack'; retransmit: boolean }
  | { type: 'send-data'; block: number; retransmit: boolean }
  | { type: 'send-error'; code: number; message: string }
  | { type: 'read'; upTo: number }
  /** (Re)starts the retransmission timer with `ms`. */
  | { type: 'arm-timer'; ms: number }
  /**
   * The client proved itself: take the transfer's slot and memory now, and answer with
   * `claimed` or `refused`. Always the last action of its step.
   */
  | { type: 'claim' }
  | { type: 'finish'; outcome: Outcome; detail: string };

export function createTransfer(settings: TransferSettings): TransferState {
  if (settings.readAheadBlocks < settings.windowsize) {
    throw new RangeError('readAheadBlocks must hold at least one window');
  }
  return {
    settings,
    phase: 'new',
    proven: false,
    windowStart: 1,
    sentUpTo: 0,
    readyUpTo: 0,
    readRequested: 0,
    readInFlight: false,
    lastBlock: null,
    retries: 0,
    retransmits: 0,
    intervalMs: settings.timeoutMs,
    armedMs: 0,
    waitedMs: 0,
    resendOnRepeat: false,
    oackQuiet: true,
  };
}

/** Maps a 16-bit ACK block number to the absolute block it can mean, or null. */
function absoluteAck(s: TransferState, wire: number): number | null {
  const base = s.windowStart - 1;
  const abs = base + ((wire - base) & 0xffff);
  return abs <= s.sentUpTo ? abs : null;
}

function finish(
  s: TransferState,
  actions: TransferAction[],
  outcome: Outcome,
  detail: string,
): void {
  s.phase = 'done';
  actions.push({ type: 'finish', outcome, detail });
}

/** Arms the timer with the current interval, never past the stall limit. */
function arm(s: TransferState, actions: TransferAction[]): void {
  s.armedMs = Math.min(s.intervalMs, s.settings.stallLimitMs - s.waitedMs);
  actions.push({ type: 'arm-timer', ms: s.armedMs });
}

/** The interval cap: never below the first interval. */
function intervalCap(s: TransferState): number {
  return Math.max(s.settings.timeoutMs, s.settings.maxIntervalMs);
}

/** The client acknowledged something new: the backoff and the stall clock start over. */
function progressed(s: TransferState): void {
  s.retries = 0;
  s.waitedMs = 0;
  s.intervalMs = s.settings.timeoutMs;
  s.resendOnRepeat = false;
}

/** Sends the unacknowledged part of the window again. */
function resendWindow(s: TransferState, actions: TransferAction[]): void {
  for (let b = s.windowStart; b <= s.sentUpTo; b++) {
    s.retransmits += 1;
    actions.push({ type: 'send-data', block: b, retransmit: true });
  }
}

/**
 * The client has just proven itself: the first time, the shell must claim the transfer's
 * slot and memory before anything more is read.
 */
function claimOrPump(s: TransferState, actions: TransferAction[]): void {
  if (s.proven) {
    s.phase = 'data';
    pump(s, actions);
  } else {
    s.phase = 'claiming';
    actions.push({ type: 'claim' });
  }
}

/** Sends what the window allows and keeps the read-ahead going (data phase only). */
function pump(s: TransferState, actions: TransferAction[]): void {
  if (s.phase !== 'data') return;
  const { windowsize, readAheadBlocks } = s.settings;
  const last = s.lastBlock ?? Infinity;
  const windowEnd = Math.min(s.windowStart + windowsize - 1, last);
  let sent = false;
  while (s.sentUpTo < windowEnd && s.sentUpTo < s.readyUpTo) {
    s.sentUpTo += 1;
    actions.push({ type: 'send-data', block: s.sentUpTo, retransmit: false });
    sent = true;
  }
  if (sent) arm(s, actions);
  // Unproven (lock-step without options, before ACK 1): block 1 only, no read-ahead.
  const depth = s.proven ? readAheadBlocks : 1;
  const wanted = Math.min(s.windowStart + depth - 1, last);
  if (!s.readInFlight && s.readRequested < wanted) {
    s.readRequested = wanted;
    s.readInFlight = true;
    actions.push({ type: 'read', upTo: wanted });
  }
}

export function step(s: TransferState, e: TransferEvent): TransferAction[] {
  const actions: TransferAction[] = [];
  if (s.phase === 'done') return actions;
  switch (e.type) {
    case 'start':
      if (s.phase !== 'new') break;
      if (s.settings.sendOack) {
        s.phase = 'oack';
        actions.push({ type: 'send-oack', retransmit: false });
        arm(s, actions);
      } else {
        s.phase = 'data';
        // Armed before block 1 is even read: a read that never ends is a stall too.
        arm(s, actions);
        pump(s, actions);
      }
      break;

    case 'ack': {
      if (s.phase === 'oack') {
        // RFC 2347: ACK 0 confirms the OACK; anything else is noise.
        if (e.block !== 0) break;
        progressed(s);
        claimOrPump(s, actions);
        break;
      }
      if (s.phase !== 'data') break;
      const acked = absoluteAck(s, e.block);
      // Duplicate (or stale) ACK: ignored, never answered with a resend — unless the timer
      // already fired and this is the client repeating its last ACK (see the header).
      if (acked === null || acked < s.windowStart) {
        if (acked === s.windowStart - 1 && s.resendOnRepeat) {
          s.resendOnRepeat = false;
          resendWindow(s, actions);
        }
        break;
      }
      progressed(s);
      s.windowStart = acked + 1;
      if (s.lastBlock !== null && acked >= s.lastBlock) {
        finish(s, actions, 'completed', '');
        break;
      }
      // RFC 7440 §4: an ACK inside the window means the blocks after it were lost:
      // the next window starts right after the acknowledged block.
      if (acked < s.sentUpTo) s.sentUpTo = acked;
      claimOrPump(s, actions);
      break;
    }

    case 'request-repeated':
      // Before any ACK the client repeats its RRQ because our first packet did not reach
      // it; a repeat the network made (duplicated or late) comes before the timer fires.
      if (!s.resendOnRepeat || s.proven || s.windowStart > 1) break;
      if (s.phase === 'oack') {
        s.resendOnRepeat = false;
        s.oackQuiet = true;
        s.retransmits += 1;
        actions.push({ type: 'send-oack', retransmit: true });
      } else if (s.phase === 'data' && s.sentUpTo >= 1) {
        s.resendOnRepeat = false;
        resendWindow(s, actions);
      }
      break;

    case 'claimed':
      if (s.phase !== 'claiming') break;
      s.proven = true;
      s.phase = 'data';
      pump(s, actions);
      break;

    case 'refused':
      actions.push({ type: 'send-error', code: 0, message: e.message });
      finish(s, actions, 'refused', e.message);
      break;

    case 'client-error':
      if (s.phase === 'oack' || s.phase === 'new') {
        if (s.settings.tsizeRequested) finish(s, actions, 'probe', e.message);
        else if (e.code === 8) finish(s, actions, 'option-refused', e.message);
        else finish(s, actions, 'aborted', `client error ${e.code}: ${e.message}`);
      } else {
        finish(s, actions, 'aborted', `client error ${e.code}: ${e.message}`);
      }
      break;

    case 'timeout': {
      // Not while 'claiming': in a worker the claim's answer takes a message from the main
      // thread; the timer stays quiet until then (a lost answer is bounded by the worker's
      // admission proxy, which refuses after its own timeout).
      if (s.phase !== 'oack' && s.phase !== 'data') break;
      s.waitedMs += s.armedMs;
      s.retries += 1;
      if (s.retries > s.settings.maxRetries || s.waitedMs >= s.settings.stallLimitMs) {
        actions.push({ type: 'send-error', code: 0, message: 'timed out' });
        finish(s, actions, 'timeout', `no progress for ${s.waitedMs} ms (${s.retries} timeouts)`);
        break;
      }
      if (s.phase === 'oack' && s.oackQuiet) {
        // Quiet (see the header): the client's own retransmission comes first.
        s.oackQuiet = false;
      } else if (s.phase === 'oack') {
        s.retransmits += 1;
        actions.push({ type: 'send-oack', retransmit: true });
      } else {
        resendWindow(s, actions);
      }
      s.resendOnRepeat = true;
      s.intervalMs = Math.min(2 * s.intervalMs, intervalCap(s));
      arm(s, actions);
      break;
    }

    case 'read-done':
      s.readInFlight = false;
      s.readyUpTo = Math.max(s.readyUpTo, e.upTo);
      if (e.eof) s.lastBlock = e.upTo;
      pump(s, actions);
      break;

    case 'read-failed':
      s.readInFlight = false;
      actions.push({ type: 'send-error', code: 0, message: 'read error' });
      finish(s, actions, 'failed', e.message);
      break;

    case 'abort':
      actions.push({ type: 'send-error', code: e.code, message: e.message });
      finish(s, actions, 'aborted', e.message);
      break;

    case 'superseded':
      finish(s, actions, 'aborted', 'superseded by a new request from the same port');
      break;
  }
  return actions;
}
