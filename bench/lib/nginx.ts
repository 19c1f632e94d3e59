/**
 * nginx as the benchmarks' reference static HTTP server (Debian's, unpacked into
 * .tools/nginx by scripts/setup.sh): one process in the foreground (no master, one
 * worker loop), sendfile on, its prefix in a directory of the caller's, optionally inside
 * a network namespace. bench/http.ts and bench/storm.ts both start it here.
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { REPO } from '../../dataplane/test/helpers/tftp-servers.ts';

export const NGINX = join(REPO, '.tools/nginx/usr/sbin/nginx');

/** Why nginx cannot run here, or undefined when it can. */
export function nginxMissingReason(): string | undefined {
  return existsSync(NGINX) ? undefined : `${NGINX} missing: scripts/setup.sh unpacks it`;
}

export interface NginxOptions {
  /** Its prefix: config, pid file, temp dirs (created). */
  dir: string;
  /** The document root: GET /<name> serves <root>/<name>. */
  root: string;
  address: string;
  port: number;
  netns?: string;
  /** Connections at once (nginx's worker_connections; the listener takes one). Default 1024. */
  connections?: number;
}

export interface RunningNginx {
  pid: number;
  port: number;
  stop(): Promise<void>;
}

function config(o: NginxOptions): string {
  const connections = o.connections ?? 1024;
  // A connection holds a socket and, while it sends, the open file.
  return `daemon off; master_process off; worker_processes 1; pid ${o.dir}/nginx.pid;
worker_rlimit_nofile ${2 * connections + 64};
error_log stderr warn;
events { worker_connections ${connections}; }
http {
  access_log off; log_not_found off; sendfile on; tcp_nopush on;
  client_body_temp_path ${o.dir}/body; proxy_temp_path ${o.dir}/proxy;
  fastcgi_temp_path ${o.dir}/fcgi; uwsgi_temp_path ${o.dir}/uwsgi; scgi_temp_path ${o.dir}/scgi;
  default_type application/octet-stream;
  server { listen ${o.address}:${o.port}; root ${o.root}; }
}
`;
}

/** Does something answer HTTP at address:port (from inside the namespace, if any)? */
function answers(o: NginxOptions): boolean {
  // A name no root holds: a 404, which log_not_found keeps out of the error log.
  const url = `http://${o.address}:${o.port}/.rtftp-bench-probe`;
  const curl = ['curl', '-s', '-o', '/dev/null', '--max-time', '2', url];
  const [cmd, ...args] = o.netns ? ['ip', 'netns', 'exec', o.netns, ...curl] : curl;
  // curl exits 0 on any HTTP answer, 7 when refused.
  return spawnSync(cmd!, args).status === 0;
}

/** Starts nginx and resolves once it answers HTTP; stopped by its PID. */
export async function startNginx(o: NginxOptions): Promise<RunningNginx> {
  const why = nginxMissingReason();
  if (why) throw new Error(why);
  mkdirSync(join(o.dir, 'logs'), { recursive: true });
  const conf = join(o.dir, 'nginx.conf');
  writeFileSync(conf, config(o));
  const argv = [NGINX, '-p', o.dir, '-e', 'stderr', '-c', conf];
  // `ip netns exec` execs nginx, so the PID is nginx's own (its CPU and RSS are measured).
  const [cmd, ...args] = o.netns ? ['ip', 'netns', 'exec', o.netns, ...argv] : argv;
  const child = spawn(cmd!, args, { stdio: ['ignore', 'inherit', 'inherit'] });
  let exited = false;
  const exit = new Promise<void>((r) =>
    child.once('exit', () => {
      exited = true;
      r();
    }),
  );
  const stop = async () => {
    if (exited) return;
    child.kill('SIGTERM');
    await exit;
  };
  for (let i = 0; i < 100 && !exited; i++) {
    if (answers(o)) return { pid: child.pid!, port: o.port, stop };
    await new Promise((r) => setTimeout(r, 50));
  }
  await stop();
  throw new Error(`nginx did not answer on ${o.address}:${o.port} (its errors are above)`);
}
