/**
 * Reads a V8 .cpuprofile (node --cpu-prof; bench/storm.ts --cpu-prof DIR) and prints where
 * the time went: self time per function, the busiest first, idle left out.
 *
 *   node --import tsx bench/lib/cpuprofile-summary.ts FILE.cpuprofile [--top 40]
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}
interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

export interface SelfTime {
  name: string;
  ms: number;
  share: number;
}

/** Self time per function (name and file:line), idle excluded, largest first. */
export function selfTimes(profile: CpuProfile): { busyMs: number; rows: SelfTime[] } {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const ms = new Map<string, number>();
  let busy = 0;
  for (let i = 0; i < profile.samples.length; i++) {
    const node = byId.get(profile.samples[i]!);
    const dt = (profile.timeDeltas[i] ?? 0) / 1000;
    if (!node || node.callFrame.functionName === '(idle)') continue;
    const f = node.callFrame;
    const where = f.url
      ? ` ${f.url.replace(/^.*\/(rtftp|storm)[^/]*\//, '')}:${f.lineNumber + 1}`
      : '';
    const key = `${f.functionName || '(anonymous)'}${where}`;
    ms.set(key, (ms.get(key) ?? 0) + dt);
    busy += dt;
  }
  const rows = [...ms]
    .map(([name, t]) => ({ name, ms: t, share: t / busy }))
    .sort((a, b) => b.ms - a.ms);
  return { busyMs: busy, rows };
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const { values, positionals } = parseArgs({
    options: { top: { type: 'string', default: '40' } },
    allowPositionals: true,
  });
  for (const file of positionals) {
    const { busyMs, rows } = selfTimes(JSON.parse(readFileSync(file, 'utf8')) as CpuProfile);
    console.log(`${file}: ${busyMs.toFixed(0)} ms busy`);
    for (const r of rows.slice(0, Number(values.top)))
      console.log(
        `${r.ms.toFixed(0).padStart(7)} ms ${(100 * r.share).toFixed(1).padStart(5)}%  ${r.name}`,
      );
  }
}
