{{/*
Defaults for the `outrigger:` values block. The including chart's block is merged over these, so a
chart only sets what it changes. Booleans default to false on purpose: Helm's merge cannot turn a
default `true` off.
*/}}
{{- define "outrigger-sidecar.defaults" -}}
image:
  repository: ghcr.io/outrigger-mesh/outrigger-proxy
  tag: "0.1.0" # x-release-please-version
  digest: ""
  pullPolicy: IfNotPresent
containerName: outrigger-proxy
ports:
  inbound: 4143
  admin: 4191
# Drain knobs (durations such as 5s). Empty: the proxy derives them from the pod's
# terminationGracePeriodSeconds, which the templates pass as OUTRIGGER_TERMINATION_GRACE_PERIOD.
drainDelay: ""
drainTimeout: ""
# Token the app's preStop hook (outrigger-sidecar.appLifecycle) sends to the proxy's GET /drain.
# Empty: derived as sha256(namespace/release/drainTokenSeed), stable across upgrades (a random value
# per render would change the pod template, and roll every pod, on each upgrade). Without a seed
# anyone who knows the release's name can derive it: set drainTokenSeed (or drainToken) from a
# secret value in production (e.g. Flux valuesFrom a Secret). Changing either rolls the pods.
drainToken: ""
drainTokenSeed: ""
logLevel: info
# OUTRIGGER_WORKERS: 1..256, or "auto" for the proxy's own choice (the CPUs its cgroup allows, at
# most 2). One worker runs the proxy's current-thread runtime, the configuration bench/proxy.sh
# measures; without a CPU limit "auto" would see every core of the node.
workers: "1"
# Any other proxy setting as NAME: value (e.g. OUTRIGGER_REQUEST_TIMEOUT: 30s); see `outrigger-proxy --help`.
config: {}
tls:
  # Secret in cert-manager layout (tls.crt, tls.key, ca.crt). The proxy hot-reloads rotated files.
  enabled: false
  secretName: ""
  requireClientCert: false
  mountPath: /var/run/outrigger/tls
otel:
  # OTLP endpoint (e.g. http://otel-collector.observability:4318); empty: tracing off.
  endpoint: ""
  serviceName: ""
  sampler: parentbased_traceidratio
  samplerArg: "0.1"
resources:
  requests:
    cpu: 20m
    memory: 32Mi
  limits:
    memory: 128Mi
securityContext:
  allowPrivilegeEscalation: false
  readOnlyRootFilesystem: true
  runAsNonRoot: true
  runAsUser: 65532
  runAsGroup: 65532
  capabilities:
    drop: [ALL]
  seccompProfile:
    type: RuntimeDefault
probes:
  startup:
    periodSeconds: 1
    timeoutSeconds: 1
    failureThreshold: 30
  readiness:
    periodSeconds: 5
    timeoutSeconds: 1
    failureThreshold: 2
  liveness:
    periodSeconds: 10
    timeoutSeconds: 2
    failureThreshold: 3
extraEnv: []
extraVolumeMounts: []
{{- end -}}
