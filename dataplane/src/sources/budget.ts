/**
 * Budgets: how much work one request may cost a disk source, in one place (STYLE.md).
 *
 * A disk's contents are untrusted (docs/security.md): a directory of 20,000 entries reached
 * through chained symlinks, a FAT chain that jumps across the whole FAT, a directory that
 * contains itself. Each open of the native reader therefore runs on a {@link WorkBudget}:
 * metadata page reads, symlink hops, directory entries scanned and wall time. Past any of
 * them the open fails with a {@link BudgetExceededError} naming the budget: that client
 * gets an ERROR, the event is counted, and the disk stays usable for its other files.
 *
 * Pacing: cached pages resolve as microtasks, so without it one open could hold the event
 * loop for seconds while every other client waits. All budgeted work together gets at most
 * {@link PACE_SLICE_MS} of the main thread per event-loop turn (plus one step for each open
 * that resumed in that turn, so none starves); then it yields (setImmediate) and the
 * loop serves sockets and timers before any more disk parsing runs.
 */
import { DiskError } from './disk-session.ts';

/** The budgets, by the name that labels the metric and the refusal. */
export type BudgetName = 'page-reads' | 'symlink-hops' | 'directory-entries' | 'wall-time';
/** The budgets spent by counting (wall time is spent by the clock). */
export type CountedBudget = Exclude<BudgetName, 'wall-time'>;

export interface BudgetLimits {
  /** Metadata reads, in 64 KiB cache pages touched; cache hits count (they hold the loop). */
  pageReads: number;
  /** Symbolic links followed while resolving one path (Linux's MAXSYMLINKS is 40). */
  symlinkHops: number;
  /** Directory entries looked at, over every directory the path crosses. */
  directoryEntries: number;
  /** Milliseconds from the start of the open (waiting for the NBD server included). */
  wallMs: number;
}

/**
 * Defaults per open (docs/native-reader.md, "Budgets", says why each is this size). A
 * legitimate boot path costs far less than each: a few components in directories of at
 * most a few thousand entries, a few dozen page reads, milliseconds.
 */
export const DEFAULT_OPEN_BUDGET: Readonly<BudgetLimits> = Object.freeze({
  pageReads: 4_000,
  symlinkHops: 40,
  directoryEntries: 100_000,
  wallMs: 10_000,
});

/** Main-thread milliseconds all budgeted disk parsing may take per event-loop turn. */
export const PACE_SLICE_MS = 0.5;

export const BUDGET_ERROR_CODE = 'RTFTP_ERR_OVER_BUDGET';
export const BUDGET_ABORTED_CODE = 'RTFTP_ERR_OPEN_ABORTED';

const COUNTED: Record<CountedBudget, keyof BudgetLimits> = {
  'page-reads': 'pageReads',
  'symlink-hops': 'symlinkHops',
  'directory-entries': 'directoryEntries',
};

/** One open went past one of its budgets. */
export class BudgetExceededError extends DiskError {
  constructor(
    readonly budget: BudgetName,
    readonly limit: number,
  ) {
    super(
      BUDGET_ERROR_CODE,
      'over-budget',
      budget === 'wall-time'
        ? `over budget: took longer than ${limit} ms`
        : `over budget: more than ${limit} ${budget.replace('-', ' ')}`,
    );
    this.name = 'BudgetExceededError';
  }
}

/** The refusal reason a client's request gets for a budget: stable, one per budget. */
export function budgetRefusalReason(budget: BudgetName): string {
  return `over budget: ${budget}`;
}

// ---- pacing, shared by every budget of the process ----------------------------------
let turnOpen = false;
let turnStart = 0;

/** Marks the current event-loop turn as having run disk work since `now`. */
function enterTurn(now: number): void {
  if (turnOpen) return;
  turnOpen = true;
  turnStart = now;
  // Runs at the next check phase: before any continuation that yields after this point.
  setImmediate(() => {
    turnOpen = false;
  });
}

const nextTurn = () => new Promise<void>((resolve) => setImmediate(resolve));

/** The work of one request on a disk source: counts, the clock, and pacing. */
export class WorkBudget {
  // Plain fields: spend() runs for every metadata read and directory block.
  private pageReads = 0;
  private symlinkHops = 0;
  private directoryEntries = 0;
  private readonly started: number;
  private resumed = false;

  constructor(
    readonly limits: Readonly<BudgetLimits> = DEFAULT_OPEN_BUDGET,
    private readonly signal?: AbortSignal,
    private readonly now: () => number = () => performance.now(),
  ) {
    this.started = now();
  }

  /** No limits (walking a whole tree in tests and tools); still paced. */
  static unlimited(): WorkBudget {
    return new WorkBudget({
      pageReads: Infinity,
      symlinkHops: Infinity,
      directoryEntries: Infinity,
      wallMs: Infinity,
    });
  }

  /** What was spent so far, for logs and tests. */
  get usage(): Record<BudgetName, number> {
    return {
      'page-reads': this.pageReads,
      'symlink-hops': this.symlinkHops,
      'directory-entries': this.directoryEntries,
      'wall-time': Math.round(this.now() - this.started),
    };
  }

  /** Counts `n` units; throws BudgetExceededError past the limit (or past the wall time). */
  spend(budget: CountedBudget, n = 1): void {
    let total: number;
    if (budget === 'page-reads') total = this.pageReads += n;
    else if (budget === 'directory-entries') total = this.directoryEntries += n;
    else total = this.symlinkHops += n;
    const limit = this.limits[COUNTED[budget]];
    if (total > limit) throw new BudgetExceededError(budget, limit);
    if (budget !== 'directory-entries') this.checkClock();
  }

  private checkClock(): void {
    if (this.signal?.aborted)
      throw new DiskError(BUDGET_ABORTED_CODE, 'other', 'the request was abandoned');
    if (this.now() - this.started > this.limits.wallMs)
      throw new BudgetExceededError('wall-time', this.limits.wallMs);
  }

  /**
   * Called before each step of disk work (each metadata read): yields to the event loop
   * when budgeted work has had its slice of this turn. A continuation that just resumed
   * always gets one step, so every open progresses. Throws past the wall time or when
   * the request was abandoned. Returns a promise only when it yields (the common case,
   * no yield, costs no microtask).
   */
  pace(): Promise<void> | undefined {
    this.checkClock();
    const now = this.now();
    enterTurn(now);
    if (this.resumed) {
      this.resumed = false;
      return undefined;
    }
    if (now - turnStart < PACE_SLICE_MS) return undefined;
    return nextTurn().then(() => {
      this.resumed = true;
      this.checkClock();
    });
  }
}
