{{/* Chart name, truncated to the 63-character label limit. */}}
{{- define "outrigger.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Fully qualified release name. */}}
{{- define "outrigger.fullname" -}}
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

{{/* Name of the agent objects (DaemonSet, Service, ServiceMonitor): <fullname>-agent. */}}
{{- define "outrigger.agentName" -}}
{{- printf "%s-agent" (include "outrigger.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "outrigger.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "outrigger.labels" -}}
helm.sh/chart: {{ include "outrigger.chart" . }}
app.kubernetes.io/name: {{ include "outrigger.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: outrigger
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "outrigger.agentSelectorLabels" -}}
app.kubernetes.io/name: {{ include "outrigger.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: agent
{{- end }}

{{- define "outrigger.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "outrigger.agentName" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* repository:tag or repository@digest. */}}
{{- define "outrigger.agentImage" -}}
{{- $img := .Values.agent.image }}
{{- if $img.digest }}
{{- printf "%s@%s" $img.repository $img.digest }}
{{- else }}
{{- printf "%s:%s" $img.repository (default .Chart.AppVersion $img.tag | toString) }}
{{- end }}
{{- end }}

{{/* The Secret holding the injector's serving certificate: cert-manager's, or one provided. */}}
{{- define "outrigger.injectorTlsSecret" -}}
{{- if eq .Values.injector.certificate.source "secret" -}}
{{- required "injector.certificate.existingSecret is required with source: secret" .Values.injector.certificate.existingSecret -}}
{{- else -}}
{{- include "outrigger.injectorName" . }}-tls
{{- end -}}
{{- end }}
