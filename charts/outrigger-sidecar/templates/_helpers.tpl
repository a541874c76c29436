{{/*
Every template takes one dict argument:
  root          the including chart's top-level context ($)
  values        its `outrigger:` values block (merged over outrigger-sidecar.defaults)
  appPort       the port the app listens on inside the pod (the proxy forwards to 127.0.0.1:appPort)
  serviceName   optional: default OTEL_SERVICE_NAME (otherwise the release name)
*/}}

{{/* The effective configuration: defaults with the chart's values merged over them, as YAML. */}}
{{- define "outrigger-sidecar.config" -}}
{{- $defaults := include "outrigger-sidecar.defaults" . | fromYaml -}}
{{- $values := deepCopy (default (dict) .values) -}}
{{- toYaml (mergeOverwrite $defaults $values) -}}
{{- end -}}

{{/* image reference: repository@digest when a digest is set, else repository:tag. */}}
{{- define "outrigger-sidecar.image" -}}
{{- $c := include "outrigger-sidecar.config" . | fromYaml -}}
{{- if $c.image.digest -}}
{{- printf "%s@%s" $c.image.repository $c.image.digest -}}
{{- else -}}
{{- printf "%s:%s" $c.image.repository (required "outrigger.image.tag or outrigger.image.digest is required" (toString $c.image.tag)) -}}
{{- end -}}
{{- end -}}

{{/*
The drain token (see drainToken in _defaults.tpl): the value when set, else 64 hex characters
derived from the release's namespace and name and drainTokenSeed, so every render of a release
gives the same pod template.
*/}}
{{- define "outrigger-sidecar.drainToken" -}}
{{- $c := include "outrigger-sidecar.config" . | fromYaml -}}
{{- if $c.drainToken -}}
{{- $t := toString $c.drainToken -}}
{{- if or (lt (len $t) 16) (gt (len $t) 256) (not (regexMatch "^[!-~]+$" $t)) -}}
{{- fail "outrigger.drainToken must be 16 to 256 visible ASCII characters (no spaces)" -}}
{{- end -}}
{{- $t -}}
{{- else -}}
{{- printf "outrigger-drain/%s/%s/%s" .root.Release.Namespace .root.Release.Name (toString $c.drainTokenSeed) | sha256sum -}}
{{- end -}}
{{- end -}}

{{/* Name of the Service / container port that receives mesh traffic. */}}
{{- define "outrigger-sidecar.inboundPortName" -}}outrigger{{- end -}}
{{/* Name of the admin port (/live, /ready, /metrics). */}}
{{- define "outrigger-sidecar.adminPortName" -}}outrigger-admin{{- end -}}
