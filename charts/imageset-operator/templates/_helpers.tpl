{{/*
Chart name, truncated to the 63 characters a label value allows.
*/}}
{{- define "imageset-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Full name used as the prefix of every resource. The release name alone when it
already contains the chart name.
*/}}
{{- define "imageset-operator.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/*
Chart name and version, for the helm.sh/chart label.
*/}}
{{- define "imageset-operator.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Labels on every resource.
*/}}
{{- define "imageset-operator.labels" -}}
helm.sh/chart: {{ include "imageset-operator.chart" . }}
{{ include "imageset-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/*
Labels that select the operator pod.
*/}}
{{- define "imageset-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "imageset-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
Name of the ServiceAccount the operator runs as.
*/}}
{{- define "imageset-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "imageset-operator.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
Name of the cache PersistentVolumeClaim: the existing one, or the chart's own.
*/}}
{{- define "imageset-operator.cacheClaimName" -}}
{{- if .Values.cache.existingClaim }}
{{- .Values.cache.existingClaim }}
{{- else }}
{{- printf "%s-cache" (include "imageset-operator.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{/*
"true" on OpenShift: detected from the security.openshift.io/v1 API unless `openshift` forces it.
*/}}
{{- define "imageset-operator.openshift" -}}
{{- if eq (toString .Values.openshift) "auto" }}
{{- .Capabilities.APIVersions.Has "security.openshift.io/v1" }}
{{- else }}
{{- toString .Values.openshift }}
{{- end }}
{{- end }}

{{/*
A security context without the fields OpenShift's SCCs assign (fsGroup, user and group IDs).
*/}}
{{- define "imageset-operator.securityContext" -}}
{{- $ctx := deepCopy (.context | default dict) }}
{{- if eq (include "imageset-operator.openshift" .root) "true" }}
{{- $ctx = omit $ctx "fsGroup" "runAsUser" "runAsGroup" "supplementalGroups" }}
{{- end }}
{{- with $ctx }}
{{- toYaml . }}
{{- end }}
{{- end }}

{{/*
Name of the trusted CA ConfigMap.
*/}}
{{- define "imageset-operator.trustedCAName" -}}
{{- default (printf "%s-trusted-ca" (include "imageset-operator.fullname" .) | trunc 63 | trimSuffix "-") .Values.trustedCA.configMapName }}
{{- end }}

{{/*
Name of the archive PersistentVolumeClaim: the existing one, or the chart's own.
*/}}
{{- define "imageset-operator.archiveClaimName" -}}
{{- if .Values.archive.existingClaim }}
{{- .Values.archive.existingClaim }}
{{- else }}
{{- printf "%s-archive" (include "imageset-operator.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{/*
A PersistentVolumeClaim of the chart: name, values (size, accessMode, storageClassName, keep)
and what it holds.
*/}}
{{- define "imageset-operator.claim" -}}
apiVersion: v1
kind: PersistentVolumeClaim
metadata:
  name: {{ .name }}
  namespace: {{ .root.Release.Namespace }}
  labels:
    {{- include "imageset-operator.labels" .root | nindent 4 }}
  {{- if .values.keep }}
  annotations:
    helm.sh/resource-policy: keep
  {{- end }}
spec:
  accessModes:
    - {{ .values.accessMode }}
  {{- with .values.storageClassName }}
  storageClassName: {{ . | quote }}
  {{- end }}
  resources:
    requests:
      storage: {{ .values.size | quote }}
{{- end }}
