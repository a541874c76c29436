{{/*
outrigger-sidecar.container: the proxy as a Kubernetes native sidecar. Put it under the pod's
`initContainers:`; `restartPolicy: Always` makes the kubelet start it (and wait for its startup
probe) before the app containers, keep it running alongside them, and stop it only after they
exited, so the proxy never drops requests the app is still finishing.
Extra dict key: terminationGracePeriodSeconds (passed on as OUTRIGGER_TERMINATION_GRACE_PERIOD).
*/}}
{{- define "outrigger-sidecar.container" -}}
{{- $c := include "outrigger-sidecar.config" . | fromYaml -}}
- name: {{ $c.containerName }}
  image: {{ include "outrigger-sidecar.image" . | quote }}
  imagePullPolicy: {{ $c.image.pullPolicy }}
  restartPolicy: Always
  env:
    {{- include "outrigger-sidecar.env" . | nindent 4 }}
  ports:
    {{- include "outrigger-sidecar.ports" . | nindent 4 }}
  {{- include "outrigger-sidecar.probes" . | nindent 2 }}
  resources:
    {{- toYaml $c.resources | nindent 4 }}
  securityContext:
    {{- toYaml $c.securityContext | nindent 4 }}
  {{- $mounts := include "outrigger-sidecar.volumeMounts" . | trim }}
  {{- if $mounts }}
  volumeMounts:
    {{- $mounts | nindent 4 }}
  {{- end }}
{{- end -}}

{{/* outrigger-sidecar.env: the proxy's environment (interface of issue 3). */}}
{{- define "outrigger-sidecar.env" -}}
{{- $c := include "outrigger-sidecar.config" . | fromYaml -}}
{{- $appPort := required "outrigger-sidecar: appPort is required" .appPort -}}
- name: OUTRIGGER_INBOUND
  value: {{ printf "0.0.0.0:%v" $c.ports.inbound | quote }}
- name: OUTRIGGER_APP
  value: {{ printf "127.0.0.1:%v" $appPort | quote }}
- name: OUTRIGGER_ADMIN
  value: {{ printf "0.0.0.0:%v" $c.ports.admin | quote }}
- name: OUTRIGGER_LOG
  value: {{ $c.logLevel | quote }}
{{- if ne (toString $c.workers) "auto" }}
- name: OUTRIGGER_WORKERS
  value: {{ $c.workers | toString | quote }}
{{- end }}
{{- with .terminationGracePeriodSeconds }}
- name: OUTRIGGER_TERMINATION_GRACE_PERIOD
  value: {{ . | quote }}
{{- end }}
{{- with $c.drainDelay }}
- name: OUTRIGGER_DRAIN_DELAY
  value: {{ . | quote }}
{{- end }}
{{- with $c.drainTimeout }}
- name: OUTRIGGER_DRAIN_TIMEOUT
  value: {{ . | quote }}
{{- end }}
- name: OUTRIGGER_PROXY_DRAIN_TOKEN
  value: {{ include "outrigger-sidecar.drainToken" . | quote }}
{{- if $c.tls.enabled }}
{{- $_ := required "outrigger.tls.secretName is required when outrigger.tls.enabled" $c.tls.secretName }}
- name: OUTRIGGER_TLS_CERT
  value: {{ printf "%s/tls.crt" $c.tls.mountPath | quote }}
- name: OUTRIGGER_TLS_KEY
  value: {{ printf "%s/tls.key" $c.tls.mountPath | quote }}
{{- if $c.tls.requireClientCert }}
- name: OUTRIGGER_CLIENT_CA
  value: {{ printf "%s/ca.crt" $c.tls.mountPath | quote }}
{{- end }}
{{- end }}
{{- if $c.otel.endpoint }}
- name: POD_NAME
  valueFrom:
    fieldRef:
      fieldPath: metadata.name
- name: POD_NAMESPACE
  valueFrom:
    fieldRef:
      fieldPath: metadata.namespace
- name: NODE_NAME
  valueFrom:
    fieldRef:
      fieldPath: spec.nodeName
- name: OTEL_EXPORTER_OTLP_ENDPOINT
  value: {{ $c.otel.endpoint | quote }}
- name: OTEL_SERVICE_NAME
  value: {{ default (default .root.Release.Name .serviceName) $c.otel.serviceName | quote }}
- name: OTEL_TRACES_SAMPLER
  value: {{ $c.otel.sampler | quote }}
- name: OTEL_TRACES_SAMPLER_ARG
  value: {{ $c.otel.samplerArg | quote }}
- name: OTEL_RESOURCE_ATTRIBUTES
  value: "k8s.pod.name=$(POD_NAME),k8s.namespace.name=$(POD_NAMESPACE),k8s.node.name=$(NODE_NAME)"
{{- end }}
{{- range $name := keys $c.config | sortAlpha }}
- name: {{ $name }}
  value: {{ index $c.config $name | toString | quote }}
{{- end }}
{{- with $c.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* outrigger-sidecar.ports: container ports (mesh inbound + admin). */}}
{{- define "outrigger-sidecar.ports" -}}
{{- $c := include "outrigger-sidecar.config" . | fromYaml -}}
- name: {{ include "outrigger-sidecar.inboundPortName" . }}
  containerPort: {{ $c.ports.inbound }}
  protocol: TCP
- name: {{ include "outrigger-sidecar.adminPortName" . }}
  containerPort: {{ $c.ports.admin }}
  protocol: TCP
{{- end -}}

{{/*
outrigger-sidecar.probes: startup and liveness on /live (the proxy itself), readiness on /ready
(turns 503 the moment the proxy starts draining).
*/}}
{{- define "outrigger-sidecar.probes" -}}
{{- $c := include "outrigger-sidecar.config" . | fromYaml -}}
{{- $admin := include "outrigger-sidecar.adminPortName" . -}}
startupProbe:
  httpGet:
    path: /live
    port: {{ $admin }}
  {{- toYaml $c.probes.startup | nindent 2 }}
readinessProbe:
  httpGet:
    path: /ready
    port: {{ $admin }}
  {{- toYaml $c.probes.readiness | nindent 2 }}
livenessProbe:
  httpGet:
    path: /live
    port: {{ $admin }}
  {{- toYaml $c.probes.liveness | nindent 2 }}
{{- end -}}

{{/* outrigger-sidecar.volumeMounts: the TLS secret (when enabled) plus extraVolumeMounts. */}}
{{- define "outrigger-sidecar.volumeMounts" -}}
{{- $c := include "outrigger-sidecar.config" . | fromYaml -}}
{{- if $c.tls.enabled }}
- name: outrigger-tls
  mountPath: {{ $c.tls.mountPath }}
  readOnly: true
{{- end }}
{{- with $c.extraVolumeMounts }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/*
outrigger-sidecar.appLifecycle: the APP container's `lifecycle:` block. Its preStop hook calls the
proxy's GET /drain (admin port, by number: the kubelet resolves a named port in the hook's own
container) with the drain token. The kubelet runs the main containers' preStop hooks first and
sends a native sidecar SIGTERM only after the app exited, so this is how the proxy learns of the
termination in time: /drain turns readiness off, closes kept-alive connections after their
response (HTTP/2: GOAWAY) and answers once the drain delay is over; only then does the app get
its SIGTERM and its own graceful shutdown. The hook's time counts against
terminationGracePeriodSeconds.
  lifecycle:
    {{- include "outrigger-sidecar.appLifecycle" $o | nindent 4 }}
*/}}
{{- define "outrigger-sidecar.appLifecycle" -}}
{{- $c := include "outrigger-sidecar.config" . | fromYaml -}}
preStop:
  httpGet:
    path: /drain
    port: {{ $c.ports.admin }}
    scheme: HTTP
    httpHeaders:
      - name: X-Outrigger-Drain-Token
        value: {{ include "outrigger-sidecar.drainToken" . | quote }}
{{- end -}}
