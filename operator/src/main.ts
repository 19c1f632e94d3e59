/** Entry point of rtftp-operator (bin/rtftp-operator.js): the controller or the sync sidecar. */
import { pino } from 'pino';
import { parseCli, USAGE, UsageError } from './cli.ts';
import { runController } from './run-controller.ts';
import { runSync } from './sync/run-sync.ts';

let args;
try {
  args = parseCli(process.argv.slice(2), process.env);
} catch (err) {
  if (!(err instanceof UsageError)) throw err;
  process.stderr.write(`rtftp-operator: ${err.message}\n`);
  process.exit(2);
}
if (args === 'help') {
  process.stdout.write(USAGE + '\n');
  process.exit(0);
}
const log = pino({ level: args.logLevel, base: { mode: args.mode } });
let stop: (() => Promise<void>) | undefined;
const shutdown = (signal: string) => {
  log.info({ signal }, 'Shutdown requested');
  // Before start-up finished (informers still syncing) there is nothing to stop cleanly.
  void (stop ?? (async () => undefined))().then(() => process.exit(process.exitCode ?? 0));
};
// Test harnesses set this so a killed test run leaves no operator behind (no PDEATHSIG in Node).
if (process.env.RTFTP_OPERATOR_EXIT_WITH_PARENT === '1') {
  // process.ppid is read live: an orphan is re-parented (to init or a subreaper).
  const parent = process.ppid;
  setInterval(() => process.ppid !== parent && shutdown('parent exited'), 1000).unref();
}
process.once('SIGTERM', () => shutdown('SIGTERM'));
process.once('SIGINT', () => shutdown('SIGINT'));
try {
  stop = args.mode === 'sync' ? await runSync(args, log) : await runController(args, log);
} catch (err) {
  log.fatal(
    { err: (err as Error).message, code: (err as { code?: string }).code },
    'Operator failed to start',
  );
  process.exit(1);
}
