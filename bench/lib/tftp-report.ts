/** Turns the TFTP benchmark's measurements into the markdown tables the README shows. */

export interface ServerFigures {
  name: string;
  /** Median MB/s per figure key; absent = the server does not support it (n/a). */
  throughput: Record<string, number>;
  load?: { mbps: number; failures: number; cpuSeconds: number; peakRssMb: number };
}

export interface BenchShape {
  runs: number;
  loadRuns: number;
  fileMb: number;
  concurrent: number;
}

const BASELINE = 'tftp-hpa';

export function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

function cell(value: number | undefined, base: number | undefined): string {
  if (value === undefined) return 'n/a';
  const ratio = base ? ` (${(value / base).toFixed(2)}×)` : '';
  return `${value.toFixed(1)}${ratio}`;
}

function ratio(a: number | undefined, b: number | undefined): string {
  return a !== undefined && b ? `${(a / b).toFixed(2)}×` : 'n/a';
}

export function formatTables(
  results: ServerFigures[],
  figures: readonly { key: string; label: string }[],
  shape: BenchShape,
): string {
  const by = new Map(results.map((r) => [r.name, r]));
  const base = by.get(BASELINE);
  const lines: string[] = [];
  lines.push(
    `Single download of a ${shape.fileMb} MiB file with atftp, MB/s, median of ${shape.runs} runs (ratio to ${BASELINE}):`,
    '',
    `| options | ${results.map((r) => r.name).join(' | ')} |`,
    `|---|${results.map(() => '---:').join('|')}|`,
  );
  for (const f of figures) {
    const cells = results.map((r) => cell(r.throughput[f.key], base?.throughput[f.key]));
    lines.push(`| ${f.label} | ${cells.join(' | ')} |`);
  }
  lines.push(
    '',
    `${shape.concurrent} concurrent downloads of the ${shape.fileMb} MiB file (blksize 1428, Node client, ` +
      `each from its own address), median of ${shape.loadRuns} runs:`,
    '',
    `| server | aggregate MB/s | vs ${BASELINE} | failures | server CPU s | peak RSS MB |`,
    '|---|---:|---:|---:|---:|---:|',
  );
  for (const r of results) {
    const l = r.load;
    if (!l) continue;
    lines.push(
      `| ${r.name} | ${l.mbps.toFixed(1)} | ${ratio(l.mbps, base?.load?.mbps)} | ${l.failures} | ` +
        `${l.cpuSeconds.toFixed(1)} | ${l.peakRssMb.toFixed(0)} |`,
    );
  }
  const rtftp = by.get('rtftp');
  if (rtftp) {
    lines.push(
      '',
      'Targets (rtftp):',
      `- lock-step blksize 1024 ≥ 0.9× ${BASELINE}: ${ratio(rtftp.throughput.b1024, base?.throughput.b1024)}`,
      `- lock-step blksize 1428 ≥ 0.9× ${BASELINE}: ${ratio(rtftp.throughput.b1428, base?.throughput.b1428)}`,
      `- windowsize 16 ≥ 1.5× atftpd: ${ratio(rtftp.throughput.w16, by.get('atftpd')?.throughput.w16)}`,
      `- ${shape.concurrent} concurrent ≥ ${BASELINE}, zero failures: ` +
        `${ratio(rtftp.load?.mbps, base?.load?.mbps)}, ${rtftp.load?.failures ?? 'n/a'} failures`,
    );
  }
  lines.push(
    '',
    'Server CPU counts child processes too (in.tftpd forks one per transfer; sampled every 100 ms); ' +
      'peak RSS (VmHWM) is the main process only, so a forking server’s children are not in it.',
  );
  return lines.join('\n');
}
