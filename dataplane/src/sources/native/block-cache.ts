/**
 * The disk as the filesystems see it. Metadata (boot sectors, FAT, directories, inodes,
 * extent trees) is read through a byte-bounded LRU of fixed-size pages, with reads of the
 * same page merged while in flight. File data goes around the cache, straight from the
 * NBD reply into the caller's buffer: a boot file is read once per boot, so caching it
 * would only evict the metadata every open needs, and would copy every byte twice more.
 *
 * Freshness by epochs: every metadata read names the oldest epoch it accepts. A page is
 * tagged with the epoch current when its fetch was sent. Opening a file takes a new
 * epoch, so every block it reads (directory entries, inode, FAT) was fetched after the
 * open began: what the client wrote before that open is seen, whatever the cache held.
 * File data, never cached, is always read after the open.
 */
import { DEFAULT_OPEN_BUDGET, WorkBudget } from '../budget.ts';
import type { BudgetLimits } from '../budget.ts';
import { check } from './errors.ts';

/**
 * What one piece of disk work (an open, a read, a mount) reads with: the oldest epoch its
 * metadata may come from, and the budget it spends (sources/budget.ts).
 */
export interface ReadContext {
  readonly epoch: number;
  readonly budget: WorkBudget;
}

/** Where the bytes come from: an NbdClient, or a Buffer in unit tests. */
export interface RawDisk {
  readonly size: number;
  read(offset: number, length: number): Promise<Buffer>;
  /** Reads into `dst` at `dstOffset`, copying nothing on the way. */
  readInto(offset: number, length: number, dst: Buffer, dstOffset: number): Promise<void>;
}

/** A byte range of the disk (the whole disk or one partition). */
export interface BlockReader {
  readonly size: number;
  /** Metadata, through the cache: at least as fresh as `ctx.epoch`, paid from `ctx.budget`. */
  read(offset: number, length: number, ctx: ReadContext): Promise<Buffer>;
  /** File data into `dst` at `dstOffset`: read from the disk now, never cached. */
  readData(offset: number, length: number, dst: Buffer, dstOffset: number): Promise<void>;
}

export interface CacheStats {
  hits: number;
  misses: number;
  /** Metadata bytes fetched into the cache. */
  bytesFetched: number;
}

export const PAGE_SIZE = 64 * 1024;
export const DEFAULT_CACHE_BYTES = 4 * 1024 * 1024;
/** Consecutive missing pages fetched in one NBD request. */
const MAX_PAGES_PER_FETCH = 16;

interface Page {
  buf: Buffer;
  epoch: number;
}

export class CachedDisk implements BlockReader {
  private readonly pages = new Map<number, Page>();
  private readonly inFlight = new Map<number, { promise: Promise<Buffer>; epoch: number }>();
  private cachedBytes = 0;
  private epochCounter = 1;
  readonly stats: CacheStats = { hits: 0, misses: 0, bytesFetched: 0 };

  constructor(
    private readonly raw: RawDisk,
    private readonly maxBytes: number = DEFAULT_CACHE_BYTES,
    /** Told about every cache hit and miss (metrics). */
    private readonly onStat?: (kind: 'hit' | 'miss') => void,
  ) {}

  get size(): number {
    return this.raw.size;
  }

  /** A new epoch: reads with it see nothing fetched before this call. */
  newEpoch(): number {
    return ++this.epochCounter;
  }

  /** A new epoch with a new budget: the context of one open (or read, or mount). */
  begin(limits: Readonly<BudgetLimits> = DEFAULT_OPEN_BUDGET, signal?: AbortSignal): ReadContext {
    return { epoch: this.newEpoch(), budget: new WorkBudget(limits, signal) };
  }

  /**
   * The bytes; a range inside one page is a view of the cached page (never to be written).
   * Every page touched is spent from the budget, and the read paces itself first: a cache
   * hit resolves at once, so this is where a long run of them yields the event loop.
   */
  async read(offset: number, length: number, ctx: ReadContext): Promise<Buffer> {
    checkRange(offset, length, this.size, 'disk');
    if (length === 0) return Buffer.alloc(0);
    const first = Math.floor(offset / PAGE_SIZE);
    const last = Math.floor((offset + length - 1) / PAGE_SIZE);
    ctx.budget.spend('page-reads', last - first + 1);
    const yielded = ctx.budget.pace();
    if (yielded) await yielded;
    const { epoch } = ctx;
    if (first === last) {
      const page = await this.page(first, epoch);
      const at = offset - first * PAGE_SIZE;
      return page.subarray(at, at + length);
    }
    const out = Buffer.allocUnsafe(length);
    const got = await Promise.all(this.pagesFrom(first, last, epoch));
    got.forEach((page, i) => {
      const pageStart = (first + i) * PAGE_SIZE;
      const from = Math.max(offset, pageStart);
      const to = Math.min(offset + length, pageStart + page.length);
      page.copy(out, from - offset, from - pageStart, to - pageStart);
    });
    return out;
  }

  async readData(offset: number, length: number, dst: Buffer, dstOffset: number): Promise<void> {
    checkRange(offset, length, this.size, 'disk');
    check(
      dstOffset >= 0 && dstOffset + length <= dst.length,
      `read of ${length} bytes does not fit its buffer`,
    );
    if (length === 0) return;
    await this.raw.readInto(offset, length, dst, dstOffset);
  }

  /** Pages first..last, fetching the missing ones with one request per run of them. */
  private pagesFrom(first: number, last: number, epoch: number): Promise<Buffer>[] {
    const out: Promise<Buffer>[] = [];
    for (let p = first; p <= last;) {
      const ready = this.known(p, epoch);
      if (ready) {
        out.push(ready);
        p++;
        continue;
      }
      let run = 1;
      while (p + run <= last && run < MAX_PAGES_PER_FETCH && !this.has(p + run, epoch)) run++;
      out.push(...this.fetch(p, run));
      p += run;
    }
    return out;
  }

  private page(n: number, epoch: number): Promise<Buffer> {
    return this.known(n, epoch) ?? this.fetch(n, 1)[0]!;
  }

  /** Whether page `n` is cached or coming at `epoch` or newer. */
  private has(n: number, epoch: number): boolean {
    return (this.pages.get(n)?.epoch ?? 0) >= epoch || (this.inFlight.get(n)?.epoch ?? 0) >= epoch;
  }

  /** The page if cached or coming at `epoch` or newer (counted as a hit when cached). */
  private known(n: number, epoch: number): Promise<Buffer> | undefined {
    const cached = this.pages.get(n);
    if (cached && cached.epoch >= epoch) {
      // Map order is the LRU order: move to the back.
      this.pages.delete(n);
      this.pages.set(n, cached);
      this.stats.hits++;
      this.onStat?.('hit');
      return Promise.resolve(cached.buf);
    }
    const pending = this.inFlight.get(n);
    return pending && pending.epoch >= epoch ? pending.promise : undefined;
  }

  /** One request for `count` consecutive pages; each page is cached as its own copy. */
  private fetch(first: number, count: number): Promise<Buffer>[] {
    this.stats.misses += count;
    const tag = this.epochCounter;
    const start = first * PAGE_SIZE;
    const all = this.raw.read(start, Math.min(count * PAGE_SIZE, this.size - start));
    return Array.from({ length: count }, (_, i) => {
      const n = first + i;
      const promise = all.then(
        (buf) => {
          if (this.inFlight.get(n)?.promise === promise) this.inFlight.delete(n);
          // A copy: a page kept must not pin the whole request's buffer.
          const page =
            count === 1 ? buf : Buffer.from(buf.subarray(i * PAGE_SIZE, (i + 1) * PAGE_SIZE));
          this.stats.bytesFetched += page.length;
          this.onStat?.('miss');
          this.store(n, { buf: page, epoch: tag });
          return page;
        },
        (err: unknown) => {
          if (this.inFlight.get(n)?.promise === promise) this.inFlight.delete(n);
          throw err;
        },
      );
      this.inFlight.set(n, { promise, epoch: tag });
      return promise;
    });
  }

  private store(n: number, page: Page): void {
    const old = this.pages.get(n);
    if (old) {
      if (old.epoch > page.epoch) return;
      this.pages.delete(n);
      this.cachedBytes -= old.buf.length;
    }
    if (page.buf.length > this.maxBytes) return;
    this.pages.set(n, page);
    this.cachedBytes += page.buf.length;
    for (const [key, p] of this.pages) {
      if (this.cachedBytes <= this.maxBytes) break;
      this.pages.delete(key);
      this.cachedBytes -= p.buf.length;
    }
  }

  get cachedByteCount(): number {
    return this.cachedBytes;
  }
}

function checkRange(offset: number, length: number, size: number, what: string): void {
  check(
    Number.isSafeInteger(offset) && offset >= 0 && length >= 0 && offset + length <= size,
    `read of ${length} bytes at ${offset} lies outside the ${size}-byte ${what}`,
  );
}

/** A partition: a bounds-checked window on the disk. */
export class DiskRange implements BlockReader {
  constructor(
    private readonly disk: BlockReader,
    readonly start: number,
    readonly size: number,
  ) {}

  read(offset: number, length: number, ctx: ReadContext): Promise<Buffer> {
    checkRange(offset, length, this.size, 'partition');
    return this.disk.read(this.start + offset, length, ctx);
  }

  readData(offset: number, length: number, dst: Buffer, dstOffset: number): Promise<void> {
    checkRange(offset, length, this.size, 'partition');
    return this.disk.readData(this.start + offset, length, dst, dstOffset);
  }
}
