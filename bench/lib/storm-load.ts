/**
 * One process of the storm's load generator (bench/storm.ts runs several, so that the
 * clients use every core). Reads its share of the clients from a JSON file, gets ready
 * (TFTP: loads the expected payloads once, to compare every block in place; HTTP: nothing,
 * each body is hashed as it streams), runs every client at once and prints one JSON line
 * (StormRunResult; HTTP adds its connection count).
 *
 *   node --import tsx bench/lib/storm-load.ts <spec.json>
 */
import { readFileSync } from 'node:fs';
import { runStormClients } from '../../dataplane/test/helpers/storm-client.ts';
import type { StormClientSpec, StormRunResult } from '../../dataplane/test/helpers/storm-client.ts';
import { runHttpClients } from './http-load-client.ts';
import type { HttpLoadSpec } from './http-load-client.ts';

export interface StormLoadSpec extends StormClientSpec {
  /** Local files holding the expected payloads, by payload index. */
  payloadFiles: string[];
}

const file = process.argv[2];
if (!file) {
  console.error('usage: storm-load.ts <spec.json>');
  process.exit(2);
}
const spec = JSON.parse(readFileSync(file, 'utf8')) as StormLoadSpec | HttpLoadSpec;
let run: () => Promise<StormRunResult>;
if (spec.profile === 'http') run = () => runHttpClients(spec);
else {
  const payloads = spec.payloadFiles.map((p) => readFileSync(p));
  run = () => runStormClients(spec, payloads);
}
process.stdout.write('ready\n');
await new Promise<void>((resolve) => {
  process.stdin.on('data', (d: Buffer) => {
    if (d.toString().includes('go')) resolve();
  });
});
process.stdin.pause();
const result = await run();
process.stdout.write(`${JSON.stringify(result)}\n`);
