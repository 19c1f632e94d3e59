/**
 * The operator's connection to the API server: the one place (with the rest of kube/)
 * that imports @kubernetes/client-node. In a pod the in-cluster service account; elsewhere
 * KUBECONFIG or ~/.kube/config (loadFromDefault picks in that order).
 */
import {
  CoordinationV1Api,
  CoreV1Api,
  CustomObjectsApi,
  EventsV1Api,
  KubeConfig,
  Watch,
} from '@kubernetes/client-node';

export interface KubeApis {
  kubeConfig: KubeConfig;
  core: CoreV1Api;
  custom: CustomObjectsApi;
  coordination: CoordinationV1Api;
  events: EventsV1Api;
  watch: Watch;
}

export function connectKube(): KubeApis {
  const kubeConfig = new KubeConfig();
  kubeConfig.loadFromDefault();
  if (!kubeConfig.getCurrentCluster()) {
    throw Object.assign(new Error('no Kubernetes cluster configured (in-cluster or KUBECONFIG)'), {
      code: 'RTFTP_ERR_KUBECONFIG',
    });
  }
  return {
    kubeConfig,
    core: kubeConfig.makeApiClient(CoreV1Api),
    custom: kubeConfig.makeApiClient(CustomObjectsApi),
    coordination: kubeConfig.makeApiClient(CoordinationV1Api),
    events: kubeConfig.makeApiClient(EventsV1Api),
    watch: new Watch(kubeConfig),
  };
}

/** The HTTP status of a failed API call (ApiException.code, Watch's statusCode). */
export function httpStatusOf(err: unknown): number | undefined {
  const e = err as { code?: unknown; statusCode?: unknown } | null;
  if (typeof e?.code === 'number') return e.code;
  if (typeof e?.statusCode === 'number') return e.statusCode;
  return undefined;
}

/** One line for a log: the API server's message when it sent a Status. */
export function apiErrorMessage(err: unknown): string {
  const body = (err as { body?: unknown } | null)?.body;
  if (typeof body === 'string') {
    try {
      const parsed = JSON.parse(body) as { message?: string };
      if (parsed.message) return parsed.message;
    } catch {
      // not JSON: fall through
    }
  }
  if (typeof body === 'object' && body !== null && 'message' in body) return String(body.message);
  return err instanceof Error ? err.message : String(err);
}
