/**
 * The controller's writes, through @kubernetes/client-node: rendered ConfigMaps, BootClient
 * status (PUT to /status with the resourceVersion: optimistic concurrency) and Events
 * (events.k8s.io/v1, eventTime as MicroTime). Every write first checks the fence, so a
 * replica that lost its Lease stops writing at once.
 */
import { randomBytes } from 'node:crypto';
import { V1MicroTime } from '@kubernetes/client-node';
import {
  BOOTCLIENT_API_VERSION,
  BOOTCLIENT_GROUP,
  BOOTCLIENT_KIND,
  BOOTCLIENT_PLURAL,
  BOOTCLIENT_VERSION,
  type BootClient,
  type BootClientStatus,
} from '../../../common/src/bootclient.ts';
import {
  BOOTNETWORK_API_VERSION,
  BOOTNETWORK_KIND,
  BOOTNETWORK_PLURAL,
  type BootNetwork,
  type BootNetworkStatus,
} from '../../../common/src/bootnetwork.ts';
import { MANAGED_BY_LABEL, MANAGED_BY_OPERATOR, RENDERED_LABEL } from '../controller/shards.ts';
import { ApiCallError, type OperatorApi, type WriteFence } from '../controller/ports.ts';
import type { ConditionEvent } from '../controller/conditions.ts';
import { apiErrorMessage, httpStatusOf, type KubeApis } from './client.ts';

export const REPORTING_CONTROLLER = 'rtftp.io/operator';

async function call<T>(what: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    throw new ApiCallError(`${what}: ${apiErrorMessage(err)}`, httpStatusOf(err), { cause: err });
  }
}

/** A read that answers null for 404 and an ApiCallError for anything else. */
async function getOrNull<T>(what: string, fn: () => Promise<unknown>): Promise<T | null> {
  try {
    return (await fn()) as T;
  } catch (err) {
    if (httpStatusOf(err) === 404) return null;
    throw new ApiCallError(`${what}: ${apiErrorMessage(err)}`, httpStatusOf(err), {
      cause: err,
    });
  }
}

export function createOperatorApi(
  apis: KubeApis,
  opts: { namespace: string; identity: string; fence: WriteFence },
): OperatorApi {
  const fenced = () => {
    if (!opts.fence()) throw new ApiCallError('not the leader: write refused', undefined);
  };
  const group = BOOTCLIENT_GROUP;
  const version = BOOTCLIENT_VERSION;
  const plural = BOOTCLIENT_PLURAL;
  return {
    async putConfigMap(name, data, existing) {
      fenced();
      const body = {
        apiVersion: 'v1',
        kind: 'ConfigMap',
        metadata: {
          name,
          namespace: opts.namespace,
          labels: {
            [RENDERED_LABEL]: 'true',
            [MANAGED_BY_LABEL]: MANAGED_BY_OPERATOR,
          },
          resourceVersion: existing?.resourceVersion,
        },
        data,
      };
      const namespace = opts.namespace;
      if (existing)
        return await call(`replace ConfigMap ${name}`, () =>
          apis.core.replaceNamespacedConfigMap({ name, namespace, body }),
        );
      return await call(`create ConfigMap ${name}`, () =>
        apis.core.createNamespacedConfigMap({ namespace, body }),
      );
    },

    getBootClient(namespace, name) {
      return getOrNull<BootClient>(`get BootClient ${namespace}/${name}`, () =>
        apis.custom.getNamespacedCustomObject({ group, version, namespace, plural, name }),
      );
    },

    async writeStatus(bc: BootClient, status: BootClientStatus) {
      fenced();
      const { namespace, name } = bc.metadata;
      const body = {
        apiVersion: BOOTCLIENT_API_VERSION,
        kind: BOOTCLIENT_KIND,
        metadata: { name, namespace, resourceVersion: bc.metadata.resourceVersion },
        status,
      };
      return (await call(`update status of BootClient ${namespace}/${name}`, () =>
        apis.custom.replaceNamespacedCustomObjectStatus({
          group,
          version,
          namespace,
          plural,
          name,
          body,
        }),
      )) as BootClient;
    },

    getBootNetwork(name) {
      return getOrNull<BootNetwork>(`get BootNetwork ${name}`, () =>
        apis.custom.getClusterCustomObject({ group, version, plural: BOOTNETWORK_PLURAL, name }),
      );
    },

    async writeBootNetworkStatus(bn: BootNetwork, status: BootNetworkStatus) {
      fenced();
      const { name, resourceVersion } = bn.metadata;
      const body = {
        apiVersion: BOOTNETWORK_API_VERSION,
        kind: BOOTNETWORK_KIND,
        metadata: { name, resourceVersion },
        status,
      };
      return (await call(`update status of BootNetwork ${name}`, () =>
        apis.custom.replaceClusterCustomObjectStatus({
          group,
          version,
          plural: BOOTNETWORK_PLURAL,
          name,
          body,
        }),
      )) as BootNetwork;
    },

    async recordEvent(bc: BootClient, event: ConditionEvent) {
      fenced();
      const { namespace, name, uid, resourceVersion } = bc.metadata;
      await call(`create Event for BootClient ${namespace}/${name}`, () =>
        apis.events.createNamespacedEvent({
          namespace,
          body: {
            metadata: {
              name: `${name}.${Date.now().toString(16)}${randomBytes(3).toString('hex')}`,
              namespace,
            },
            eventTime: new V1MicroTime(),
            type: event.type,
            reason: event.reason,
            note: event.message.slice(0, 1024),
            action: 'Reconcile',
            reportingController: REPORTING_CONTROLLER,
            reportingInstance: opts.identity.slice(0, 128),
            regarding: {
              apiVersion: BOOTCLIENT_API_VERSION,
              kind: BOOTCLIENT_KIND,
              namespace,
              name,
              uid,
              resourceVersion,
            },
          },
        }),
      );
    },
  };
}
