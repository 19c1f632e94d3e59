/**
 * Writes a sync sidecar's report Lease (controller/sync-report.ts) with the least RBAC: a
 * merge patch (no read, no resourceVersion: the sidecar is the only writer of its node's
 * Lease, and the newest report is the right one), and a create when it does not exist.
 * Verbs needed: patch and create on leases, in the configs' namespace.
 */
import { PatchStrategy, V1MicroTime, setHeaderOptions } from '@kubernetes/client-node';
import type { ReportWrite } from '../sync/sync-reporter.ts';
import { apiErrorMessage, httpStatusOf, type KubeApis } from './client.ts';

export function syncReportWriter(apis: KubeApis, namespace: string): ReportWrite {
  const patch = (lease: Parameters<ReportWrite>[0]) =>
    apis.coordination.patchNamespacedLease(
      { name: lease.metadata.name, namespace, body: lease },
      setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
    );
  return async (lease) => {
    try {
      try {
        await patch(lease);
      } catch (err) {
        if (httpStatusOf(err) !== 404) throw err;
        try {
          await apis.coordination.createNamespacedLease({
            namespace,
            body: {
              ...lease,
              metadata: { ...lease.metadata, namespace },
              spec: { ...lease.spec, renewTime: new V1MicroTime(lease.spec.renewTime) },
            },
          });
        } catch (created) {
          // Created meanwhile (a second pod on the node during a rollout): patch that one.
          if (httpStatusOf(created) !== 409) throw created;
          await patch(lease);
        }
      }
    } catch (err) {
      throw Object.assign(new Error(apiErrorMessage(err)), {
        code: 'RTFTP_ERR_KUBE_API',
        status: httpStatusOf(err),
        cause: err,
      });
    }
  };
}
