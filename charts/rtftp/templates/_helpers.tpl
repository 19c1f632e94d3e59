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

{{- define "rtftp.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
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
The dataplane binds a port below 1024 only through CAP_NET_BIND_SERVICE. With
bindStrategy=fileCapability the image's node-netbind (a copy of node carrying the file
capability) runs it as non-root; plain node everywhere else, because a binary with a file
capability cannot even be executed when that capability is outside the bounding set.
*/}}
{{- define "rtftp.dataplaneNeedsBindCap" -}}
{{- if lt (int .Values.dataplane.port) 1024 }}true{{ end -}}
{{- end -}}

{{- define "rtftp.dataplaneNode" -}}
{{- if and (include "rtftp.dataplaneNeedsBindCap" .) (eq .Values.dataplane.bindStrategy "fileCapability") -}}
node-netbind
{{- else -}}
node
{{- end -}}
{{- end -}}

{{- define "rtftp.dataplaneSecurityContext" -}}
{{- if not (include "rtftp.dataplaneNeedsBindCap" .) -}}
runAsNonRoot: true
runAsUser: {{ .Values.securityContext.runAsUser }}
runAsGroup: {{ .Values.securityContext.runAsGroup }}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities:
  drop: [ALL]
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
  # Kept in the bounding set, or node-netbind cannot be executed (EPERM).
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
