/**
 * What each PXE scenario prints, so a regression in boot time or TFTP throughput is
 * visible in CI logs: the boot time and one line per file the VM fetched.
 */
import type { TransferEntry } from './dataplane-process.ts';

export function formatBootReport(
  scenario: string,
  bootMs: number,
  transfers: readonly TransferEntry[],
): string {
  const rows = transfers.map((t) => {
    const seconds = t.durationMs / 1000;
    const mibps = seconds > 0 ? t.bytes / 1048576 / seconds : 0;
    return [
      `  ${t.file.padEnd(28)}`,
      `${String(t.source ?? '-').padEnd(10)}`,
      `${String(t.bytes).padStart(9)} B`,
      `${t.durationMs.toFixed(0).padStart(6)} ms`,
      `${mibps.toFixed(2).padStart(6)} MiB/s`,
      `blksize ${t.blksize ?? '-'}`,
      `windowsize ${t.windowsize ?? '-'}`,
      `retransmits ${t.retransmits ?? 0}`,
      t.outcome,
    ].join('  ');
  });
  return [`[pxe] ${scenario}: booted in ${(bootMs / 1000).toFixed(1)} s`, ...rows].join('\n');
}
