/**
 * One process of the storm's load generator (bench/storm.ts runs several, so that the
 * clients use every core). Reads its share of the clients from a JSON file, loads the
 * expected payloads once, runs every client at once and prints one JSON line
 * (StormRunResult).
 *
 *   node --import tsx bench/lib/storm-load.ts <spec.json>
 */
import { readFileSync } from 'node:fs';
import { runStormClients } from '../../dataplane/test/helpers/storm-client.ts';
import type { StormClientSpec } from '../../dataplane/test/helpers/storm-client.ts';

export interface StormLoadSpec extends StormClientSpec {
  /** Local files holding the expected payloads, by payload index. */
  payloadFiles: string[];
}

const file = process.argv[2];
if (!file) {
  console.error('usage: storm-load.ts <spec.json>');
  process.exit(2);
}
const spec = JSON.parse(readFileSync(file, 'utf8')) as StormLoadSpec;
const payloads = spec.payloadFiles.map((p) => readFileSync(p));
process.stdout.write('ready\n');
await new Promise<void>((resolve) => {
  process.stdin.on('data', (d: Buffer) => {
    if (d.toString().includes('go')) resolve();
  });
});
process.stdin.pause();
const result = await runStormClients(spec, payloads);
process.stdout.write(`${JSON.stringify(result)}\n`);
