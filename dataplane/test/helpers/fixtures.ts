/**
 * Test files made on the spot from a seeded PRNG (never committed blobs), and the
 * hashes the tests compare downloads against.
 */
import { createCipheriv, createHash } from 'node:crypto';
import {
  createReadStream,
  mkdirSync,
  mkdtempSync,
  openSync,
  closeSync,
  rmSync,
  writeSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';

const CHUNK = 1 << 20;

/**
 * A deterministic byte stream: AES-128-CTR keystream keyed by the seed. It is fast
 * (128 MiB in well under a second) and has no structure a codec bug could hide in.
 */
function keystream(seed: number) {
  const key = createHash('sha256').update(`rtftp-fixture-${seed}`).digest().subarray(0, 16);
  return createCipheriv('aes-128-ctr', key, Buffer.alloc(16));
}

/** mulberry32: a small seeded PRNG, so a failing run can be replayed from the seed it printed. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function seededBytes(size: number, seed: number): Buffer {
  return keystream(seed).update(Buffer.alloc(size));
}

/** Writes `size` seeded bytes to `path` in 1 MiB chunks and returns their sha256. */
export function writeSeededFile(path: string, size: number, seed: number): string {
  mkdirSync(dirname(path), { recursive: true });
  const cipher = keystream(seed);
  const hash = createHash('sha256');
  const zeros = Buffer.alloc(CHUNK);
  const fd = openSync(path, 'w');
  try {
    for (let left = size; left > 0; left -= CHUNK) {
      const chunk = cipher.update(left >= CHUNK ? zeros : zeros.subarray(0, left));
      hash.update(chunk);
      writeSync(fd, chunk);
    }
  } finally {
    closeSync(fd);
  }
  return hash.digest('hex');
}

export function sha256(data: Buffer | string): string {
  return createHash('sha256').update(data).digest('hex');
}

export async function sha256File(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

export interface TempDir {
  path: string;
  file(...parts: string[]): string;
  remove(): void;
}

export function makeTempDir(prefix: string): TempDir {
  const path = mkdtempSync(join(tmpdir(), `${prefix}-`));
  return {
    path,
    file: (...parts) => join(path, ...parts),
    remove: () => rmSync(path, { recursive: true, force: true }),
  };
}
