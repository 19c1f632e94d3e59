/**
 * Which build a process runs, exposed as `rtftp_build_info` by the dataplane, the operator
 * and its sync sidecar, so a dashboard shows which version runs where.
 *
 * The revision (the source commit) comes from, first hit wins:
 * 1. the environment variable `RTFTP_REVISION` (the image sets it from a build arg);
 * 2. a file `REVISION` beside the package.json (for builds that write it instead);
 * 3. `git rev-parse HEAD` when the package root is a git checkout;
 * 4. `unknown`.
 * docs/runbooks.md ("Version and process metrics") documents the contract.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Gauge } from 'prom-client';
import type { Registry } from 'prom-client';

export interface BuildInfo {
  /** package.json's version. */
  version: string;
  /** Source commit, or `unknown`. */
  revision: string;
  /** process.version, e.g. v22.12.0. */
  nodeVersion: string;
}

export const REVISION_ENV = 'RTFTP_REVISION';
export const REVISION_FILE = 'REVISION';
export const UNKNOWN = 'unknown';
/** Longer values are not a revision; a label that long would only bloat every scrape. */
const MAX_REVISION_LENGTH = 64;

/** The directory of rtftp's package.json: the checkout, or /app in the image (dist/ below it). */
export function packageRoot(from = dirname(fileURLToPath(import.meta.url))): string | null {
  for (let dir = from, up = 0; up < 8; dir = dirname(dir), up++) {
    try {
      const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { name?: unknown };
      if (pkg.name === 'rtftp') return dir;
    } catch {
      // not here: one level up
    }
  }
  return null;
}

/** One line, trimmed, of a sane length; anything else counts as not given. */
function revisionOf(text: string | undefined | null): string | null {
  const line = text?.split('\n', 1)[0]?.trim() ?? '';
  return line && line.length <= MAX_REVISION_LENGTH ? line : null;
}

function gitHead(root: string): string | null {
  if (!existsSync(join(root, '.git'))) return null;
  try {
    return execFileSync('git', ['-C', root, 'rev-parse', 'HEAD'], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
      timeout: 5000,
    });
  } catch {
    // no git binary, or not a repository git accepts (ownership): the revision is unknown
    return null;
  }
}

export function readBuildInfo(
  opts: {
    env?: NodeJS.ProcessEnv;
    root?: string | null;
    git?: (root: string) => string | null;
  } = {},
): BuildInfo {
  const env = opts.env ?? process.env;
  const root = opts.root === undefined ? packageRoot() : opts.root;
  let version = UNKNOWN;
  if (root) {
    try {
      const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as {
        version?: unknown;
      };
      if (typeof pkg.version === 'string' && pkg.version) version = pkg.version;
    } catch {
      // keep unknown
    }
  }
  const fromFile = () => {
    try {
      return root ? revisionOf(readFileSync(join(root, REVISION_FILE), 'utf8')) : null;
    } catch {
      return null;
    }
  };
  const revision =
    revisionOf(env[REVISION_ENV]) ??
    fromFile() ??
    (root ? revisionOf((opts.git ?? gitHead)(root)) : null) ??
    UNKNOWN;
  return { version, revision, nodeVersion: process.version };
}

let cached: BuildInfo | undefined;

/** This process's build, read once (git runs at most once per process). */
export function buildInfo(): BuildInfo {
  cached ??= readBuildInfo();
  return cached;
}

/**
 * `rtftp_build_info{component, version, revision, node_version} 1`. `component` says which
 * process (dataplane, operator, sync): the sync sidecar is scraped under the dataplane's job.
 */
export function buildInfoGauge(registers: Registry[], component: string, info = buildInfo()) {
  const gauge = new Gauge({
    name: 'rtftp_build_info',
    help: 'Always 1: which build this process runs (component, version, source revision, Node.js version)',
    labelNames: ['component', 'version', 'revision', 'node_version'] as const,
    registers,
  });
  gauge.set(
    {
      component,
      version: info.version,
      revision: info.revision,
      node_version: info.nodeVersion,
    },
    1,
  );
  return gauge;
}
