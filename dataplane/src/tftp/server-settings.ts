/**
 * The TFTP server's settings from the command line, shared by the main thread and the
 * workers (worker mode builds one TftpServer per thread from the same flags).
 */
import type { DataplaneOptions } from '../cli.ts';
import type { ServerOptions } from './server.ts';

export type ServerSettings = Pick<
  ServerOptions,
  | 'listen'
  | 'port'
  | 'admission'
  | 'timeoutMs'
  | 'maxRetries'
  | 'maxTimeoutS'
  | 'stallTimeoutMs'
  | 'maxWindowBytes'
>;

export function serverSettingsFrom(opts: DataplaneOptions): ServerSettings {
  return {
    listen: opts.listen,
    port: opts.port,
    admission: {
      maxActive: opts.maxTransfers,
      maxActivePerClient: opts.maxTransfersPerClient,
      maxActivePerSubnet: opts.maxTransfersPerSubnet,
      maxPending: opts.maxPending,
      maxPendingPerSubnet: opts.maxPendingPerSubnet,
      memoryBudgetBytes: opts.maxTransferMemoryMiB * 1024 * 1024,
    },
    timeoutMs: opts.timeoutMs,
    maxRetries: opts.retries,
    maxTimeoutS: opts.maxTimeoutS,
    stallTimeoutMs: opts.stallTimeoutS * 1000,
    maxWindowBytes: opts.maxWindowBytes,
  };
}
