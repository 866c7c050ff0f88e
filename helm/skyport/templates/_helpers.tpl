{{/* The chart name, overridable with nameOverride. */}}
{{- define "skyport.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The release's full name: fullnameOverride, else the release name when it already contains
the chart name, else "<release>-<chart>". Truncated to 63 characters (DNS label).
*/}}
{{- define "skyport.fullname" -}}
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

{{/* "<chart>-<version>" for the helm.sh/chart label. */}}
{{- define "skyport.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels every object of the release carries. */}}
{{- define "skyport.labels" -}}
helm.sh/chart: {{ include "skyport.chart" . }}
app.kubernetes.io/name: {{ include "skyport.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: skyport
{{- end }}

{{/* Selector of the control-plane pods (stable across upgrades: never add to it). */}}
{{- define "skyport.selectorLabels" -}}
app.kubernetes.io/name: {{ include "skyport.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: control-plane
{{- end }}

{{- define "skyport.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "skyport.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "skyport.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{- define "skyport.brokerImage" -}}
{{- $img := .Values.orchestrator.brokerImage }}
{{- printf "%s:%s" $img.repository (default .Chart.AppVersion $img.tag) }}
{{- end }}

{{/* Namespace the kubernetes driver manages deployments in. */}}
{{- define "skyport.orchestratorNamespace" -}}
{{- default .Release.Namespace .Values.orchestrator.namespace }}
{{- end }}

{{/* Secret (name, key) holding the database URL. */}}
{{- define "skyport.databaseSecretName" -}}
{{- default (printf "%s-database" (include "skyport.fullname" .)) .Values.database.existingSecret.name }}
{{- end }}

{{- define "skyport.databaseSecretKey" -}}
{{- .Values.database.existingSecret.key }}
{{- end }}

{{/* Secret (name, key) holding the admin token. */}}
{{- define "skyport.adminTokenSecretName" -}}
{{- default (printf "%s-admin-token" (include "skyport.fullname" .)) .Values.adminToken.existingSecret.name }}
{{- end }}

{{- define "skyport.adminTokenSecretKey" -}}
{{- .Values.adminToken.existingSecret.key }}
{{- end }}

{{/* Secret holding the key that encrypts stored TLS private keys (key `secret-key`). */}}
{{- define "skyport.secretKeySecretName" -}}
{{- default (printf "%s-secret-key" (include "skyport.fullname" .)) .Values.secretKey.existingSecret }}
{{- end }}

{{/* Where the data dir (scratch: the database is PostgreSQL) is mounted. */}}
{{- define "skyport.dataDir" -}}
/var/lib/skyport
{{- end }}

{{/* Environment shared by the control plane and the migration Job. */}}
{{- define "skyport.commonEnv" -}}
- name: SKYPORT_DATA_DIR
  value: {{ include "skyport.dataDir" . | quote }}
- name: SKYPORT_DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ include "skyport.databaseSecretName" . }}
      key: {{ include "skyport.databaseSecretKey" . }}
- name: SKYPORT_LOG_FORMAT
  value: {{ .Values.logFormat | quote }}
- name: RUST_LOG
  value: {{ .Values.logLevel | quote }}
{{- end }}
