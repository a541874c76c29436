{{- define "flask-hello-world.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "flask-hello-world.fullname" -}}
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

{{- define "flask-hello-world.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "flask-hello-world.selectorLabels" -}}
app.kubernetes.io/name: {{ include "flask-hello-world.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "flask-hello-world.labels" -}}
helm.sh/chart: {{ include "flask-hello-world.chart" . }}
{{ include "flask-hello-world.podLabels" . }}
{{- end -}}

{{/*
The pod template's labels: everything but helm.sh/chart. Flux builds this chart from Git with
reconcileStrategy Revision, so its version carries the commit (0.1.0+<sha>); in the pod template
that label would roll every pod on any commit to the repository.
*/}}
{{- define "flask-hello-world.podLabels" -}}
{{ include "flask-hello-world.selectorLabels" . }}
app.kubernetes.io/version: {{ include "flask-hello-world.tag" . | trunc 63 | trimSuffix "-" | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: outrigger
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "flask-hello-world.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "flask-hello-world.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "flask-hello-world.tag" -}}
{{- default .Chart.AppVersion .Values.image.tag | toString -}}
{{- end -}}

{{- define "flask-hello-world.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (include "flask-hello-world.tag" .) -}}
{{- end -}}
{{- end -}}

{{/*
Arguments for the outrigger-sidecar library templates, as YAML (templates cannot return a dict):
  {{- $o := include "flask-hello-world.outriggerArgs" . | fromYaml }}{{- $_ := set $o "root" $ }}
*/}}
{{- define "flask-hello-world.outriggerArgs" -}}
{{- $args := dict "values" .Values.outrigger "appPort" .Values.app.port "serviceName" (include "flask-hello-world.fullname" .) "terminationGracePeriodSeconds" .Values.terminationGracePeriodSeconds "port" .Values.service.port "portName" "http" "interval" .Values.serviceMonitor.interval "scrapeTimeout" .Values.serviceMonitor.scrapeTimeout -}}
{{- toYaml $args -}}
{{- end -}}

{{/* Fail early on settings that would break zero-downtime shutdown. */}}
{{- define "flask-hello-world.validate" -}}
{{- $budget := add .Values.app.drainDelaySeconds .Values.app.gracefulTimeoutSeconds 10 -}}
{{- if gt (int $budget) (int .Values.terminationGracePeriodSeconds) -}}
{{- fail (printf "terminationGracePeriodSeconds (%v) must be >= app.drainDelaySeconds + app.gracefulTimeoutSeconds + 10 (%v): the app would be killed mid-drain, or the sidecar before it stops" .Values.terminationGracePeriodSeconds $budget) -}}
{{- end -}}
{{- if and .Values.httpRoute.enabled (not .Values.httpRoute.parentRefs) -}}
{{- fail "httpRoute.parentRefs must name at least one Gateway" -}}
{{- end -}}
{{- if and .Values.autoscaling.enabled (gt (int .Values.autoscaling.minReplicas) (int .Values.autoscaling.maxReplicas)) -}}
{{- fail "autoscaling.minReplicas must be <= autoscaling.maxReplicas" -}}
{{- end -}}
{{- end -}}
