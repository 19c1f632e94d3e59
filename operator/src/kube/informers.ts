/** The informers the operator runs, over the client's typed list calls. */
import {
  BOOTCLIENT_GROUP,
  BOOTCLIENT_PLURAL,
  BOOTCLIENT_VERSION,
  type BootClient,
} from '../../../common/src/bootclient.ts';
import {
  BOOTNETWORK_GROUP,
  BOOTNETWORK_PLURAL,
  BOOTNETWORK_VERSION,
  type BootNetwork,
} from '../../../common/src/bootnetwork.ts';
import type { NamespaceObject, RenderedConfigMap } from '../controller/controller.ts';
import { SYNC_REPORT_SELECTOR, type LeaseObject } from '../controller/sync-report.ts';
import { httpStatusOf, type KubeApis } from './client.ts';
import { Informer, type InformerOptions } from './informer.ts';

type Common<T> = Omit<
  InformerOptions<T & { metadata?: object }>,
  'resource' | 'path' | 'list' | 'watch' | 'labelSelector'
>;

/** BootClients of one namespace, or of all namespaces when `namespace` is ''. */
export function bootClientInformer(
  apis: KubeApis,
  namespace: string,
  common: Common<BootClient>,
): Informer<BootClient> {
  const group = BOOTCLIENT_GROUP;
  const version = BOOTCLIENT_VERSION;
  const plural = BOOTCLIENT_PLURAL;
  const base = `/apis/${group}/${version}`;
  return new Informer<BootClient>({
    ...common,
    resource: plural,
    path: namespace ? `${base}/namespaces/${namespace}/${plural}` : `${base}/${plural}`,
    watch: apis.watch,
    list: async () =>
      (namespace
        ? await apis.custom.listNamespacedCustomObject({ group, version, namespace, plural })
        : await apis.custom.listCustomObjectForAllNamespaces({ group, version, plural })) as {
        items: BootClient[];
        metadata?: { resourceVersion?: string };
      },
  });
}

export function configMapInformer(
  apis: KubeApis,
  namespace: string,
  labelSelector: string,
  common: Common<RenderedConfigMap>,
): Informer<RenderedConfigMap> {
  return new Informer<RenderedConfigMap>({
    ...common,
    resource: 'configmaps',
    path: `/api/v1/namespaces/${namespace}/configmaps`,
    labelSelector,
    watch: apis.watch,
    list: async () => {
      const list = await apis.core.listNamespacedConfigMap({ namespace, labelSelector });
      return { items: list.items as RenderedConfigMap[], metadata: list.metadata };
    },
  });
}

/**
 * BootNetworks: cluster-scoped, read only when tenants' BootClients are watched. Without
 * their CRD (`helm upgrade` does not install new CRDs) the list is empty: tenants' clients
 * are NotPermitted, the operator's own namespace is served, and the list is tried again
 * until the CRD is there.
 */
export function bootNetworkInformer(
  apis: KubeApis,
  common: Common<BootNetwork>,
): Informer<BootNetwork> {
  const group = BOOTNETWORK_GROUP;
  const version = BOOTNETWORK_VERSION;
  const plural = BOOTNETWORK_PLURAL;
  let missing = false;
  return new Informer<BootNetwork>({
    ...common,
    resource: plural,
    path: `/apis/${group}/${version}/${plural}`,
    watch: apis.watch,
    list: async () => {
      try {
        const list = (await apis.custom.listClusterCustomObject({ group, version, plural })) as {
          items: BootNetwork[];
          metadata?: { resourceVersion?: string };
        };
        if (missing) common.log.info({}, 'BootNetwork CRD found');
        missing = false;
        return list;
      } catch (err) {
        if (httpStatusOf(err) !== 404) throw err;
        if (!missing)
          common.log.error(
            { crd: `${plural}.${group}` },
            'BootNetwork CRD not installed: no tenant BootClient is permitted until it is (kubectl apply -f crds/)',
          );
        missing = true;
        // No resourceVersion: the informer lists again after each failed watch.
        return { items: [], metadata: { resourceVersion: '' } };
      }
    },
  });
}

/** Namespaces (their labels), for BootNetworks that select namespaces by label. */
export function namespaceInformer(
  apis: KubeApis,
  common: Common<NamespaceObject>,
): Informer<NamespaceObject> {
  return new Informer<NamespaceObject>({
    ...common,
    resource: 'namespaces',
    path: '/api/v1/namespaces',
    watch: apis.watch,
    list: async () => {
      const list = await apis.core.listNamespace();
      return { items: list.items as NamespaceObject[], metadata: list.metadata };
    },
  });
}

/** The sync sidecars' report Leases (controller/sync-report.ts) in one namespace. */
export function syncReportInformer(
  apis: KubeApis,
  namespace: string,
  common: Common<LeaseObject>,
): Informer<LeaseObject> {
  return new Informer<LeaseObject>({
    ...common,
    resource: 'leases',
    path: `/apis/coordination.k8s.io/v1/namespaces/${namespace}/leases`,
    labelSelector: SYNC_REPORT_SELECTOR,
    watch: apis.watch,
    list: async () => {
      const list = await apis.coordination.listNamespacedLease({
        namespace,
        labelSelector: SYNC_REPORT_SELECTOR,
      });
      return { items: list.items as LeaseObject[], metadata: list.metadata };
    },
  });
}
