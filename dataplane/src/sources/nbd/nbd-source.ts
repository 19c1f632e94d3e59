/**
 * The middle of the view chain: a client's NBD disk, `tftp_root` as its root.
 *
 * Answers: 'not-found' when the client has no valid config or the disk has no such file
 * (the chain goes on to default/); 'unavailable' when the disk failed to connect or died
 * (logged, counted; the chain goes on, so a client whose disk server is down still gets
 * default/); 'not-ready' when the disk is still connecting after
 * --disk-wait, or every session --max-sessions allows is still in use: the disk is
 * expected to work, and serving default/ instead could boot the wrong kernel silently, so
 * the client gets ERROR 0 and retries.
 */
import type { NbdConfig } from '../../../../common/src/nbd-config.ts';
import type { DiskSession } from '../disk-session.ts';
import type { FileSource, OpenResult, OpenedFile, ViewRequest } from '../source.ts';
import type { DiskRegistry } from './disk-registry.ts';
import type { DiskSlot } from './disk-slot.ts';

export const NBD_SOURCE_NAME = 'nbd';
export const TFTP_ROOT_ESCAPE_REASON = 'symlink leaves tftp_root';

/** True when `path` is `root` or inside it. */
export function isInside(root: string, path: string): boolean {
  return root === '/' || path === root || path.startsWith(root + '/');
}

export function pathInDisk(config: NbdConfig, components: readonly string[]): string {
  return (config.tftpRoot === '/' ? '' : config.tftpRoot) + '/' + components.join('/');
}

/**
 * Ends the slot's use (counted by acquire) when the file closes, so idle closing and
 * retiring wait for it.
 */
function trackedFile(file: OpenedFile, slot: DiskSlot): OpenedFile {
  let closed = false;
  return {
    size: file.size,
    mtimeMs: file.mtimeMs,
    read: (buf, offset, length, position) => {
      slot.touch();
      return file.read(buf, offset, length, position);
    },
    close: async () => {
      if (closed) return;
      closed = true;
      try {
        await file.close();
      } finally {
        slot.fileClosed();
      }
    },
  };
}

export class NbdSource implements FileSource {
  readonly name = NBD_SOURCE_NAME;

  constructor(
    private readonly registry: DiskRegistry,
    private readonly diskWaitMs: number,
  ) {}

  async open(request: ViewRequest, signal: AbortSignal): Promise<OpenResult> {
    const got = await this.registry.acquire(request.clientIp, this.diskWaitMs, signal);
    if (got === null) return { status: 'not-found' };
    if (got.status === 'not-ready' || got.status === 'unavailable') return got;
    const { slot, session } = got;
    const path = pathInDisk(slot.config, request.components);
    const r = await this.openOnDisk(session, slot, path, signal).catch((err: unknown) => {
      slot.fileClosed();
      throw err;
    });
    // Only a found file keeps the use acquire counted; it ends when that file closes.
    if (r.status !== 'found') slot.fileClosed();
    return r;
  }

  private async openOnDisk(
    session: DiskSession,
    slot: DiskSlot,
    path: string,
    signal: AbortSignal,
  ): Promise<OpenResult> {
    let r;
    try {
      r = await session.open(path, signal);
    } catch (err) {
      return { status: 'unavailable', reason: `disk failed: ${(err as Error).message}` };
    }
    if (r.status !== 'found') return r;
    if (!isInside(slot.config.tftpRoot, r.path)) {
      await r.file.close();
      // One stable reason (a metric label); the request's log line names the file asked.
      return { status: 'refused', reason: TFTP_ROOT_ESCAPE_REASON };
    }
    return {
      status: 'found',
      file: trackedFile(r.file, slot),
      source: NBD_SOURCE_NAME,
      location: `${slot.status().file}:${r.path}`,
    };
  }
}
