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
 * RFC 1123 §4.2.3.1): only the timer does.
 */

export interface TransferSettings {
  blksize: number;
  windowsize: number;
  timeoutMs: number;
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

export type Outcome = 'completed' | 'probe' | 'aborted' | 'option-refused' | 'timeout' | 'failed';

export interface TransferState {
  readonly settings: TransferSettings;
  phase: 'new' | 'oack' | 'data' | 'done';
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
}

export type TransferEvent =
  | { type: 'start' }
  | { type: 'ack'; block: number }
  | { type: 'client-error'; code: number; message: string }
  | { type: 'timeout' }
  | { type: 'read-done'; upTo: number; eof: boolean }
  | { type: 'read-failed'; message: string }
  | { type: 'abort'; code: number; message: string };

export type TransferAction =
  | { type: 'send-oack'; retransmit: boolean }
  | { type: 'send-data'; block: number; retransmit: boolean }
  | { type: 'send-error'; code: number; message: string }
  | { type: 'read'; upTo: number }
  | { type: 'arm-timer'; ms: number }
  | { type: 'finish'; outcome: Outcome; detail: string };

export function createTransfer(settings: TransferSettings): TransferState {
  if (settings.readAheadBlocks < settings.windowsize) {
    throw new RangeError('readAheadBlocks must hold at least one window');
  }
  return {
    settings,
    phase: 'new',
    windowStart: 1,
    sentUpTo: 0,
    readyUpTo: 0,
    readRequested: 0,
    readInFlight: false,
    lastBlock: null,
    retries: 0,
    retransmits: 0,
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

/** Sends what the window allows and keeps the read-ahead going. */
function pump(s: TransferState, actions: TransferAction[]): void {
  const { windowsize, readAheadBlocks, timeoutMs } = s.settings;
  const last = s.lastBlock ?? Infinity;
  if (s.phase === 'data') {
    const windowEnd = Math.min(s.windowStart + windowsize - 1, last);
    let sent = false;
    while (s.sentUpTo < windowEnd && s.sentUpTo < s.readyUpTo) {
      s.sentUpTo += 1;
      actions.push({ type: 'send-data', block: s.sentUpTo, retransmit: false });
      sent = true;
    }
    if (sent) actions.push({ type: 'arm-timer', ms: timeoutMs });
  }
  const wanted = Math.min(s.windowStart + readAheadBlocks - 1, last);
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
        actions.push(
          { type: 'send-oack', retransmit: false },
          { type: 'arm-timer', ms: s.settings.timeoutMs },
        );
      } else {
        s.phase = 'data';
      }
      pump(s, actions);
      break;

    case 'ack': {
      if (s.phase === 'oack') {
        // RFC 2347: ACK 0 confirms the OACK; anything else is noise.
        if (e.block !== 0) break;
        s.phase = 'data';
        s.retries = 0;
        pump(s, actions);
        break;
      }
      if (s.phase !== 'data') break;
      const acked = absoluteAck(s, e.block);
      // Duplicate (or stale) ACK: ignored, never answered with a resend.
      if (acked === null || acked < s.windowStart) break;
      s.retries = 0;
      s.windowStart = acked + 1;
      if (s.lastBlock !== null && acked >= s.lastBlock) {
        finish(s, actions, 'completed', '');
        break;
      }
      // RFC 7440 §4: an ACK inside the window means the blocks after it were lost:
      // the next window starts right after the acknowledged block.
      if (acked < s.sentUpTo) s.sentUpTo = acked;
      pump(s, actions);
      break;
    }

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
      s.retries += 1;
      if (s.retries > s.settings.maxRetries) {
        actions.push({ type: 'send-error', code: 0, message: 'timed out' });
        finish(s, actions, 'timeout', `no ACK after ${s.settings.maxRetries} retransmissions`);
        break;
      }
      if (s.phase === 'oack') {
        s.retransmits += 1;
        actions.push({ type: 'send-oack', retransmit: true });
      } else if (s.phase === 'data') {
        for (let b = s.windowStart; b <= s.sentUpTo; b++) {
          s.retransmits += 1;
          actions.push({ type: 'send-data', block: b, retransmit: true });
        }
      }
      actions.push({ type: 'arm-timer', ms: s.settings.timeoutMs });
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
  }
  return actions;
}
