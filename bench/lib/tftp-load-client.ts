/**
 * The benchmark's measuring client for concurrent load: N simultaneous downloads with
 * the test suite's Node TFTP client, each from its own loopback address (127.0.1.x),
 * run as its own process inside the benchmark's network namespace. Prints one JSON line.
 *
 *   node --import tsx bench/lib/tftp-load-client.ts '{"port":69,"file":"load.bin","count":100,...}'
 */
import { downloadFile } from '../../dataplane/test/helpers/tftp-client.ts';
import type { TftpOptions } from '../../dataplane/test/helpers/tftp-packets.ts';

export interface LoadSpec {
  host: string;
  port: number;
  file: string;
  count: number;
  options: TftpOptions;
  sha256: string;
}

export interface LoadResult {
  seconds: number;
  bytes: number;
  failures: number;
  firstFailures: string[];
  /** The first download's OACK: shows which options the server took. */
  oack?: TftpOptions;
}

async function main(spec: LoadSpec): Promise<LoadResult> {
  const started = performance.now();
  const results = await Promise.all(
    Array.from({ length: spec.count }, (_, i) =>
      downloadFile({
        host: spec.host,
        port: spec.port,
        file: spec.file,
        options: spec.options,
        localAddress: `127.0.1.${(i % 250) + 1}`,
        retransmitMs: 1000,
        maxRetries: 10,
      }),
    ),
  );
  const seconds = (performance.now() - started) / 1000;
  const bad = results.filter((r) => !r.ok || r.sha256 !== spec.sha256);
  return {
    seconds,
    bytes: results.reduce((n, r) => n + (r.ok ? r.bytes : 0), 0),
    failures: bad.length,
    firstFailures: bad
      .slice(0, 5)
      .map(
        (r) => r.failure ?? (r.error ? `ERROR ${r.error.code} ${r.error.message}` : 'bytes differ'),
      ),
    oack: results[0]?.oack,
  };
}

const arg = process.argv[2];
if (!arg) {
  console.error('usage: tftp-load-client.ts <json LoadSpec>');
  process.exit(2);
}
process.stdout.write(`${JSON.stringify(await main(JSON.parse(arg) as LoadSpec))}\n`);
