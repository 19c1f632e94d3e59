{{/* Names: the usual helm convention, truncated to the 63 characters labels allow. */}}
{{- define "rtftp.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "rtftp.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "rtftp.operatorName" -}}
{{- printf "%s-operator" (include "rtftp.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "rtftp.dataplaneName" -}}
{{- printf "%s-dataplane" (include "rtftp.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "rtftp.operatorServiceAccount" -}}
{{- default (include "rtftp.operatorName" .) .Values.operator.serviceAccount.name -}}
{{- end -}}

{{- define "rtftp.dataplaneServiceAccount" -}}
{{- default (include "rtftp.dataplaneName" .) .Values.dataplane.serviceAccount.name -}}
{{- end -}}

{{/* Where the operator writes its rendered ConfigMaps and the sync sidecar reads them. */}}
{{- define "rtftp.configsNamespace" -}}
{{- default .Release.Namespace .Values.dataplane.configSync.namespace -}}
{{- end -}}

{{/*
Images, one per component (values.yaml, "Images"). `image` is the component's block:
repository (under image.registry when that is set), tag (else image.tag, else appVersion) and
digest, which pins the image and wins over the tag. `suffix` is appended to the tag: the
native-only dataplane is the full one's tag plus "-native", as scripts/build-image.sh names it.
*/}}
{{- define "rtftp.imageRef" -}}
{{- $global := .root.Values.image -}}
{{- $repository := .image.repository -}}
{{- with $global.registry }}{{ $repository = printf "%s/%s" (trimSuffix "/" .) $repository }}{{ end -}}
{{- if .image.digest -}}
{{- printf "%s@%s" $repository .image.digest -}}
{{- else -}}
{{- printf "%s:%s%s" $repository (.image.tag | default $global.tag | default .root.Chart.AppVersion) (.suffix | default "") -}}
{{- end -}}
{{- end -}}

{{- define "rtftp.operatorImage" -}}
{{- include "rtftp.imageRef" (dict "root" . "image" .Values.operator.image) -}}
{{- end -}}

{{- define "rtftp.dataplaneImage" -}}
{{- $suffix := ternary "-native" "" (eq .Values.dataplane.image.flavor "native") -}}
{{- include "rtftp.imageRef" (dict "root" . "image" .Values.dataplane.image "suffix" $suffix) -}}
{{- end -}}

{{/* The sync sidecar runs the operator image's `sync` mode unless given an image of its own. */}}
{{- define "rtftp.configSyncImage" -}}
{{- $own := .Values.dataplane.configSync.image -}}
{{- include "rtftp.imageRef" (dict "root" . "image" (ternary $own .Values.operator.image (ne $own.repository ""))) -}}
{{- end -}}

{{- define "rtftp.imagePullPolicy" -}}
{{- .image.pullPolicy | default .root.Values.image.pullPolicy -}}
{{- end -}}

{{- define "rtftp.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ include "rtftp.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Selector labels of one component: operator or dataplane. */}}
{{- define "rtftp.selectorLabels" -}}
app.kubernetes.io/name: {{ include "rtftp.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* Job labels the monitors set, so alerts and the dashboard select each part by name. */}}
{{- define "rtftp.operatorJob" -}}{{ include "rtftp.operatorName" . }}{{- end -}}
{{- define "rtftp.dataplaneJob" -}}{{ include "rtftp.dataplaneName" . }}{{- end -}}

{{/*
The dataplane binds a port below 1024 only through CAP_NET_BIND_SERVICE. The dataplane
images' node carries it as a file capability (docs/images.md, "Capabilities"): with
bindStrategy=fileCapability it binds as non-root; the root strategy holds it as uid 0. A
binary with a file capability cannot even be executed when that capability is outside the
bounding set, so NET_BIND_SERVICE stays there for every port; for a port of 1024 or more,
no_new_privs (allowPrivilegeEscalation: false) voids the file capability and the process
holds none. tini is PID 1: it reaps orphaned guestfish and qemu and forwards signals.
*/}}
{{- define "rtftp.dataplaneNeedsBindCap" -}}
{{- if lt (int .Values.dataplane.port) 1024 }}true{{ end -}}
{{- end -}}

{{- define "rtftp.dataplaneCommand" -}}
[/usr/bin/tini, --, node, /app/bin/rtftp.js]
{{- end -}}

{{- define "rtftp.dataplaneSecurityContext" -}}
{{- if not (include "rtftp.dataplaneNeedsBindCap" .) -}}
runAsNonRoot: true
runAsUser: {{ .Values.securityContext.runAsUser }}
runAsGroup: {{ .Values.securityContext.runAsGroup }}
# no_new_privs: node's file capability is void, the process holds no capability.
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities:
  drop: [ALL]
  # Only in the bounding set, where node's file capability needs it to be executed at all.
  add: [NET_BIND_SERVICE]
seccompProfile:
  type: RuntimeDefault
{{- else if eq .Values.dataplane.bindStrategy "fileCapability" -}}
runAsNonRoot: true
runAsUser: {{ .Values.securityContext.runAsUser }}
runAsGroup: {{ .Values.securityContext.runAsGroup }}
# The kernel grants a file capability only when no_new_privs is off.
allowPrivilegeEscalation: true
readOnlyRootFilesystem: true
capabilities:
  drop: [ALL]
  # Kept in the bounding set, or node (with its file capability) cannot be executed (EPERM).
  add: [NET_BIND_SERVICE]
seccompProfile:
  type: RuntimeDefault
{{- else -}}
runAsNonRoot: false
runAsUser: 0
runAsGroup: {{ .Values.securityContext.runAsGroup }}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities:
  drop: [ALL]
  add: [NET_BIND_SERVICE]
seccompProfile:
  type: RuntimeDefault
{{- end -}}
{{- end -}}

{{/* Pod Security "restricted" container settings: the operator and the sync sidecar. */}}
{{- define "rtftp.restrictedSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .Values.securityContext.runAsUser }}
runAsGroup: {{ .Values.securityContext.runAsGroup }}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities:
  drop: [ALL]
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/*
The service-account token as the kubelet would automount it (bound, expiring token, the
cluster CA, the namespace), but as a volume so it reaches only the containers that talk to
the API: the operator and the config-sync sidecar, never the TFTP container.
*/}}
{{- define "rtftp.kubeApiAccessVolume" -}}
projected:
  defaultMode: 0444
  sources:
    - serviceAccountToken:
        path: token
        expirationSeconds: 3607
    - configMap:
        name: kube-root-ca.crt
        items:
          - key: ca.crt
            path: ca.crt
    - downwardAPI:
        items:
          - path: namespace
            fieldRef:
              apiVersion: v1
              fieldPath: metadata.namespace
{{- end -}}

{{/* The taints kubeadm and most distributions put on control-plane nodes (old and new name). */}}
{{- define "rtftp.controlPlaneTolerations" -}}
- key: node-role.kubernetes.io/control-plane
  operator: Exists
  effect: NoSchedule
- key: node-role.kubernetes.io/master
  operator: Exists
  effect: NoSchedule
{{- end -}}
