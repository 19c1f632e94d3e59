/**
 * The Kubernetes Pod Security Standards, checked on a rendered pod spec: the rules of
 * the "baseline" and "restricted" levels (kubernetes.io/docs/concepts/security/
 * pod-security-standards) that a chart can break. Returns the violations, as the
 * admission controller would list them.
 */
export interface SecurityContext {
  runAsNonRoot?: boolean;
  runAsUser?: number;
  runAsGroup?: number;
  privileged?: boolean;
  allowPrivilegeEscalation?: boolean;
  readOnlyRootFilesystem?: boolean;
  capabilities?: { add?: string[]; drop?: string[] };
  seccompProfile?: { type: string };
}
export interface CheckedContainer {
  name: string;
  securityContext?: SecurityContext;
  ports?: { hostPort?: number }[];
}
export interface CheckedPod {
  hostNetwork?: boolean;
  hostPID?: boolean;
  hostIPC?: boolean;
  securityContext?: SecurityContext;
  containers: CheckedContainer[];
  initContainers?: CheckedContainer[];
  volumes?: Record<string, unknown>[];
}

const BASELINE_CAPABILITIES = new Set([
  'AUDIT_WRITE',
  'CHOWN',
  'DAC_OVERRIDE',
  'FOWNER',
  'FSETID',
  'KILL',
  'MKNOD',
  'NET_BIND_SERVICE',
  'SETFCAP',
  'SETGID',
  'SETPCAP',
  'SETUID',
  'SYS_CHROOT',
]);
const RESTRICTED_VOLUME_TYPES = new Set([
  'configMap',
  'csi',
  'downwardAPI',
  'emptyDir',
  'ephemeral',
  'persistentVolumeClaim',
  'projected',
  'secret',
]);

export function baselineViolations(pod: CheckedPod): string[] {
  const out: string[] = [];
  if (pod.hostNetwork) out.push('hostNetwork=true');
  if (pod.hostPID) out.push('hostPID=true');
  if (pod.hostIPC) out.push('hostIPC=true');
  for (const v of pod.volumes ?? [])
    if ('hostPath' in v) out.push(`volume ${String(v.name)} is a hostPath`);
  for (const c of [...pod.containers, ...(pod.initContainers ?? [])]) {
    const sc = c.securityContext ?? {};
    if (sc.privileged) out.push(`${c.name}: privileged`);
    for (const cap of sc.capabilities?.add ?? []) {
      if (!BASELINE_CAPABILITIES.has(cap)) out.push(`${c.name}: adds capability ${cap}`);
    }
    if (c.ports?.some((p) => p.hostPort)) out.push(`${c.name}: hostPort`);
    const seccomp = sc.seccompProfile?.type ?? pod.securityContext?.seccompProfile?.type;
    if (seccomp === 'Unconfined') out.push(`${c.name}: seccomp Unconfined`);
  }
  return out;
}

export function restrictedViolations(pod: CheckedPod): string[] {
  const out = baselineViolations(pod);
  for (const v of pod.volumes ?? []) {
    const type = Object.keys(v).find((k) => k !== 'name');
    if (type && !RESTRICTED_VOLUME_TYPES.has(type))
      out.push(`volume ${String(v.name)} has type ${type}`);
  }
  for (const c of [...pod.containers, ...(pod.initContainers ?? [])]) {
    out.push(...restrictedContainerViolations(c, pod.securityContext));
  }
  return [...new Set(out)];
}

/** The container-level rules of "restricted", for one container (e.g. a sidecar). */
export function restrictedContainerViolations(
  c: CheckedContainer,
  podContext: SecurityContext = {},
): string[] {
  const out: string[] = [];
  const sc = c.securityContext ?? {};
  if (sc.allowPrivilegeEscalation !== false)
    out.push(`${c.name}: allowPrivilegeEscalation is not false`);
  if ((sc.runAsNonRoot ?? podContext.runAsNonRoot) !== true)
    out.push(`${c.name}: runAsNonRoot is not true`);
  if ((sc.runAsUser ?? podContext.runAsUser) === 0) out.push(`${c.name}: runAsUser is 0`);
  if (!sc.capabilities?.drop?.includes('ALL'))
    out.push(`${c.name}: does not drop ALL capabilities`);
  for (const cap of sc.capabilities?.add ?? []) {
    if (cap !== 'NET_BIND_SERVICE') out.push(`${c.name}: adds capability ${cap}`);
  }
  const seccomp = sc.seccompProfile?.type ?? podContext.seccompProfile?.type;
  if (seccomp !== 'RuntimeDefault' && seccomp !== 'Localhost')
    out.push(`${c.name}: seccomp is ${seccomp}`);
  return out;
}
