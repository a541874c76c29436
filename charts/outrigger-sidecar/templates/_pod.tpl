{{/* outrigger-sidecar.volumes: pod volumes the sidecar needs (empty when TLS is off). */}}
{{- define "outrigger-sidecar.volumes" -}}
{{- $c := include "outrigger-sidecar.config" . | fromYaml -}}
{{- if $c.tls.enabled }}
- name: outrigger-tls
  secret:
    secretName: {{ required "outrigger.tls.secretName is required when outrigger.tls.enabled" $c.tls.secretName }}
    defaultMode: 0440
{{- end }}
{{- end -}}

{{/*
outrigger-sidecar.servicePorts: Service ports for the sidecar. `port` is the Service's public port;
it targets the proxy so every request goes through the mesh. The admin port is exposed for scraping.
*/}}
{{- define "outrigger-sidecar.servicePorts" -}}
{{- $c := include "outrigger-sidecar.config" . | fromYaml -}}
- name: {{ default "http" .portName }}
  port: {{ required "outrigger-sidecar.servicePorts: port is required" .port }}
  targetPort: {{ include "outrigger-sidecar.inboundPortName" . }}
  protocol: TCP
  {{- if $c.tls.enabled }}
  appProtocol: https
  {{- end }}
- name: {{ include "outrigger-sidecar.adminPortName" . }}
  port: {{ $c.ports.admin }}
  targetPort: {{ include "outrigger-sidecar.adminPortName" . }}
  protocol: TCP
{{- end -}}

{{/* outrigger-sidecar.serviceMonitorEndpoint: a ServiceMonitor endpoint for the proxy's metrics. */}}
{{- define "outrigger-sidecar.serviceMonitorEndpoint" -}}
- port: {{ include "outrigger-sidecar.adminPortName" . }}
  path: /metrics
  {{- with .interval }}
  interval: {{ . }}
  {{- end }}
  {{- with .scrapeTimeout }}
  scrapeTimeout: {{ . }}
  {{- end }}
{{- end -}}

{{/* outrigger-sidecar.networkPolicyPorts: NetworkPolicy ports admitting mesh traffic. */}}
{{- define "outrigger-sidecar.networkPolicyPorts" -}}
- port: {{ include "outrigger-sidecar.inboundPortName" . }}
  protocol: TCP
{{- end -}}

{{/* outrigger-sidecar.podAnnotations: annotations that say which ports the sidecar owns. */}}
{{- define "outrigger-sidecar.podAnnotations" -}}
{{- $c := include "outrigger-sidecar.config" . | fromYaml -}}
outrigger.dev/proxy: enabled
outrigger.dev/inbound-port: {{ $c.ports.inbound | quote }}
outrigger.dev/admin-port: {{ $c.ports.admin | quote }}
{{- end -}}
