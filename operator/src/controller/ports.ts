/**
 * What the controller needs from the cluster, as an interface: kube/operator-api.ts
 * implements it with @kubernetes/client-node, so nothing under controller/ imports the
 * client.
 */
import type { BootClient, BootClientStatus } from '../../../common/src/bootclient.ts';
import type { BootNetwork, BootNetworkStatus } from '../../../common/src/bootnetwork.ts';
import type { ConditionEvent } from './conditions.ts';
import type { RenderedConfigMap } from './controller.ts';

/** A failed API call, with the HTTP status the server answered (undefined: no answer). */
export class ApiCallError extends Error {
  readonly code = 'RTFTP_ERR_KUBE_API';
  constructor(
    message: string,
    readonly status: number | undefined,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'ApiCallError';
  }

  /** A retry cannot fix it: the request itself is wrong (not 409, 429 or 5xx). */
  get terminal(): boolean {
    const s = this.status;
    return s !== undefined && s >= 400 && s < 500 && s !== 409 && s !== 429 && s !== 408;
  }
}

export interface OperatorApi {
  /** Creates or replaces one rendered ConfigMap; resourceVersion guards the replace. */
  putConfigMap(
    name: string,
    data: Record<string, string>,
    existing: { resourceVersion?: string } | undefined,
  ): Promise<RenderedConfigMap>;
  getBootClient(namespace: string, name: string): Promise<BootClient | null>;
  /** PUT /status with the object's resourceVersion: 409 when it is stale. */
  writeStatus(bc: BootClient, status: BootClientStatus): Promise<BootClient>;
  recordEvent(bc: BootClient, event: ConditionEvent): Promise<void>;
  getBootNetwork(name: string): Promise<BootNetwork | null>;
  /** PUT /status of a (cluster-scoped) BootNetwork with its resourceVersion. */
  writeBootNetworkStatus(bn: BootNetwork, status: BootNetworkStatus): Promise<BootNetwork>;
}

/** Throws before any write when this replica is not (or might no longer be) the leader. */
export type WriteFence = () => boolean;
