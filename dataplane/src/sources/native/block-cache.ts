/**
 * The disk as the filesystems see it: byte-range reads served from a byte-bounded LRU of
 * fixed-size pages, with reads of the same page merged while in flight.
 *
 * Freshness by epochs: every read names the oldest epoch it accepts. A page is tagged with
 * the epoch current when its fetch was sent. Opening a file takes a new epoch, so every
 * block it reads (directory entries, inode, FAT, data) was fetched after the open began:
 * what the client wrote before that open is seen, whatever the cache held.
 */
import { check } from './errors.ts';

/** Where the bytes come from: an NbdClient, or a Buffer in unit tests. */
export interface RawDisk {
  readonly size: number;
  read(offset: number, length: number): Promise<Buffer>;
}

/** A byte range of the disk (the whole disk or one partition), read with an epoch. */
export interface BlockReader {
  readonly size: number;
  /**
   * `readahead`: bytes after the range worth fetching now, without waiting for them
   * (a file read sequentially); ignored past the end of the device.
   */
  read(offset: number, length: number, epoch: number, readahead?: number): Promise<Buffer>;
  /** Like read, into `dst` at `dstOffset`: file data is copied once, from page to packet. */
  readInto(
    offset: number,
    length: number,
    dst: Buffer,
    dstOffset: number,
    epoch: number,
    readahead?: number,
  ): Promise<void>;
}

export interface CacheStats {
  hits: number;
  misses: number;
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
    /** Told about every hit, miss and fetch (metrics). */
    private readonly onStat?: (kind: 'hit' | 'miss', bytes: number) => void,
  ) {}

  get size(): number {
    return this.raw.size;
  }

  /** A new epoch: reads with it see nothing fetched before this call. */
  newEpoch(): number {
    return ++this.epochCounter;
  }

  private checkRange(offset: number, length: number): void {
    check(
      Number.isSafeInteger(offset) && offset >= 0 && length >= 0 && offset + length <= this.size,
      `read of ${length} bytes at ${offset} lies outside the ${this.size}-byte disk`,
    );
  }

  /** The bytes; a range inside one page is a view of the cached page (never to be written). */
  async read(offset: number, length: number, epoch: number, readahead = 0): Promise<Buffer> {
    this.checkRange(offset, length);
    const first = Math.floor(offset / PAGE_SIZE);
    if (length > 0 && first === Math.floor((offset + length - 1) / PAGE_SIZE)) {
      if (readahead > 0) this.prefetch(first + 1, Math.ceil(readahead / PAGE_SIZE), epoch);
      const page = await this.page(first, epoch);
      const at = offset - first * PAGE_SIZE;
      return page.subarray(at, at + length);
    }
    const out = Buffer.allocUnsafe(length);
    await this.readInto(offset, length, out, 0, epoch, readahead);
    return out;
  }

  async readInto(
    offset: number,
    length: number,
    dst: Buffer,
    dstOffset: number,
    epoch: number,
    readahead = 0,
  ): Promise<void> {
    this.checkRange(offset, length);
    if (length === 0) return;
    const first = Math.floor(offset / PAGE_SIZE);
    const last = Math.floor((offset + length - 1) / PAGE_SIZE);
    if (readahead > 0) this.prefetch(last + 1, Math.ceil(readahead / PAGE_SIZE), epoch);
    const got = await Promise.all(this.pagesFrom(first, last, epoch));
    got.forEach((page, i) => {
      const pageStart = (first + i) * PAGE_SIZE;
      const from = Math.max(offset, pageStart);
      const to = Math.min(offset + length, pageStart + page.length);
      page.copy(dst, dstOffset + (from - offset), from - pageStart, to - pageStart);
    });
  }

  /** Starts fetching `count` pages from page `from` that are neither cached nor coming. */
  private prefetch(from: number, count: number, epoch: number): void {
    // Never prefetch more than a quarter of the cache: it would evict what it fetched.
    const budget = Math.min(count, Math.floor(this.maxBytes / PAGE_SIZE / 4));
    const last = Math.min(Math.floor((this.size - 1) / PAGE_SIZE), from + budget - 1);
    // A failed prefetch is forgotten: the read that needs the page fetches it again.
    for (const p of this.pagesFrom(from, last, epoch)) p.catch(() => undefined);
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
      while (p + run <= last && run < MAX_PAGES_PER_FETCH && !this.known(p + run, epoch, false))
        run++;
      out.push(...this.fetch(p, run));
      p += run;
    }
    return out;
  }

  private page(n: number, epoch: number): Promise<Buffer> {
    return this.known(n, epoch) ?? this.fetch(n, 1)[0]!;
  }

  /** The page if cached or coming at `epoch` or newer (counted as a hit when cached). */
  private known(n: number, epoch: number, count = true): Promise<Buffer> | undefined {
    const cached = this.pages.get(n);
    if (cached && cached.epoch >= epoch) {
      if (!count) return Promise.resolve(cached.buf);
      // Map order is the LRU order: move to the back.
      this.pages.delete(n);
      this.pages.set(n, cached);
      this.stats.hits++;
      this.onStat?.('hit', 0);
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
          this.onStat?.('miss', page.length);
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

/** A partition: a bounds-checked window on the disk. */
export class DiskRange implements BlockReader {
  constructor(
    private readonly disk: BlockReader,
    readonly start: number,
    readonly size: number,
  ) {}

  private checkRange(offset: number, length: number): void {
    check(
      Number.isSafeInteger(offset) && offset >= 0 && length >= 0 && offset + length <= this.size,
      `read of ${length} bytes at ${offset} lies outside the ${this.size}-byte partition`,
    );
  }

  read(offset: number, length: number, epoch: number, readahead = 0): Promise<Buffer> {
    this.checkRange(offset, length);
    return this.disk.read(
      this.start + offset,
      length,
      epoch,
      this.ahead(offset, length, readahead),
    );
  }

  readInto(
    offset: number,
    length: number,
    dst: Buffer,
    dstOffset: number,
    epoch: number,
    readahead = 0,
  ): Promise<void> {
    this.checkRange(offset, length);
    const ahead = this.ahead(offset, length, readahead);
    return this.disk.readInto(this.start + offset, length, dst, dstOffset, epoch, ahead);
  }

  private ahead(offset: number, length: number, readahead: number): number {
    return Math.max(0, Math.min(readahead, this.size - offset - length));
  }
}
