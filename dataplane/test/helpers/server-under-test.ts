/**
 * The server a dataplane test talks to: rtftp, or with RTFTP_TEST_PEER=in.tftpd,
 * tftp-hpa's server on the same files — which proves a test's harness and oracle
 * before blaming rtftp. Peers have no per-client views: every "view" is the root.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { freeUdpPort } from './udp-endpoint.ts';
import {
  IN_TFTPD,
  peerMissingReason,
  rtftpMissingReason,
  startInTftpd,
  startRtftp,
} from './tftp-servers.ts';
import type { RunningServer } from './tftp-servers.ts';

export const testingPeer = process.env.RTFTP_TEST_PEER === 'in.tftpd';

/** Why the server under test cannot run, or undefined. */
export function serverMissingReason(): string | undefined {
  return testingPeer ? peerMissingReason(IN_TFTPD) : rtftpMissingReason();
}

export interface ServedTree {
  root: string;
  /** Where files every client sees go (rtftp: default/). */
  defaultDir: string;
  /** Where the files only `ip` sees go (rtftp: <root>/<ip>/). */
  clientDir(ip: string): string;
}

export function servedTree(root: string): ServedTree {
  const defaultDir = testingPeer ? root : join(root, 'default');
  mkdirSync(defaultDir, { recursive: true });
  return {
    root,
    defaultDir,
    clientDir(ip) {
      const dir = testingPeer ? root : join(root, ip);
      mkdirSync(dir, { recursive: true });
      return dir;
    },
  };
}

/** Starts the server under test on 127.0.0.1 (an ephemeral port). */
export async function startServerUnderTest(
  tree: ServedTree,
  args: string[] = [],
): Promise<RunningServer> {
  if (testingPeer) {
    const port = await freeUdpPort();
    return startInTftpd({ root: tree.root, address: '127.0.0.1', port });
  }
  // A short grace period: tests abandon transfers on purpose and stop the server right after.
  return startRtftp({
    root: tree.root,
    listen: ['127.0.0.1'],
    port: 0,
    args: ['--grace-period', '1', ...args],
  });
}
