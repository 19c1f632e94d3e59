/**
 * RFC 2347 option negotiation for a read request: which options we accept and the OACK
 * that says so. Unknown options are ignored; values out of range are ignored (not echoed),
 * as RFC 2348/2349/7440 specify; blksize and windowsize may be answered smaller.
 */
import {
  DEFAULT_BLKSIZE,
  MAX_BLKSIZE,
  MAX_TIMEOUT_S,
  MAX_WINDOWSIZE,
  MIN_BLKSIZE,
  MIN_TIMEOUT_S,
  MIN_WINDOWSIZE,
} from './protocol.ts';

export interface NegotiationLimits {
  /**
   * Upper bound on window × blksize bytes, which is what a transfer keeps in memory for
   * retransmission; a larger windowsize is answered with the largest that fits.
   */
  maxWindowBytes: number;
  /**
   * Largest `timeout` (seconds) accepted. RFC 2349 lets the server only accept or ignore
   * the client's value, never answer another: a larger one is left out of the OACK and
   * the server's default applies. A client that asks for 255 s must not make a transfer
   * hold its slot for many minutes.
   */
  maxTimeoutS: number;
}

export interface NegotiatedOptions {
  blksize: number;
  windowsize: number;
  /** Retransmission timeout the client asked for (seconds), undefined for the server default. */
  timeoutS: number | undefined;
  /** The client asked for tsize (a size probe, when it then aborts after the OACK). */
  tsizeRequested: boolean;
  /** The OACK to send: accepted options in the client's order; empty → no OACK, plain DATA 1. */
  oack: Map<string, string>;
}

function parseDecimal(v: string): number | null {
  return /^[0-9]{1,10}$/.test(v) ? Number(v) : null;
}

/**
 * @param requested option names lower-cased, values as sent
 * @param fileSize size the transfer will send (after netascii conversion); undefined when
 *   it is not known (then `tsize` is not acknowledged)
 */
export function negotiateOptions(
  requested: ReadonlyMap<string, string>,
  fileSize: number | undefined,
  limits: NegotiationLimits,
): NegotiatedOptions {
  const result: NegotiatedOptions = {
    blksize: DEFAULT_BLKSIZE,
    windowsize: 1,
    timeoutS: undefined,
    tsizeRequested: false,
    oack: new Map(),
  };
  // blksize first: windowsize's cap depends on it, whatever order the client used.
  const blk = requested.has('blksize') ? parseDecimal(requested.get('blksize')!) : null;
  if (blk !== null && blk >= MIN_BLKSIZE && blk <= MAX_BLKSIZE) result.blksize = blk;
  for (const [name, value] of requested) {
    const n = parseDecimal(value);
    switch (name) {
      case 'blksize':
        if (n !== null && n === result.blksize && n >= MIN_BLKSIZE)
          result.oack.set(name, String(n));
        break;
      case 'timeout':
        if (n !== null && n >= MIN_TIMEOUT_S && n <= Math.min(MAX_TIMEOUT_S, limits.maxTimeoutS)) {
          result.timeoutS = n;
          result.oack.set(name, String(n));
        }
        break;
      case 'tsize':
        // RFC 2349: a read request carries 0; we answer with the size. A non-number is ignored.
        if (n !== null && fileSize !== undefined) {
          result.tsizeRequested = true;
          result.oack.set(name, String(fileSize));
        }
        break;
      case 'windowsize':
        if (n !== null && n >= MIN_WINDOWSIZE && n <= MAX_WINDOWSIZE) {
          const fit = Math.max(1, Math.floor(limits.maxWindowBytes / result.blksize));
          result.windowsize = Math.min(n, fit);
          result.oack.set(name, String(result.windowsize));
        }
        break;
      default:
        break; // RFC 2347: unknown options are ignored
    }
  }
  return result;
}
