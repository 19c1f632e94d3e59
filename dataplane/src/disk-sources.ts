/**
 * The middle of the view chain: NBD disks declared by `<ip>.nbd` configs. Wired here so
 * main.ts stays about the server; the sources themselves live in sources/nbd and sources/native.
 */
import type { Logger } from 'pino';
import type { DataplaneOptions } from './cli.ts';
import type { DataplaneMetrics } from './metrics.ts';
import type { FileSource } from './sources/source.ts';

export interface DiskSources {
  sources: FileSource[];
  status(): Record<string, unknown>;
  stop(): Promise<void>;
}

export async function startDiskSources(
  _opts: DataplaneOptions,
  _logger: Logger,
  _metrics: DataplaneMetrics,
): Promise<DiskSources> {
  return { sources: [], status: () => ({}), stop: async () => undefined };
}
