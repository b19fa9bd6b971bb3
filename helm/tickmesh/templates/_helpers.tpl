{{/* Names and labels. */}}
{{- define "tickmesh.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "tickmesh.fullname" -}}
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

{{/* A component's resource name: (dict "root" $ "component" "edge") */}}
{{- define "tickmesh.componentName" -}}
{{- printf "%s-%s" (include "tickmesh.fullname" .root) .component | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "tickmesh.selectorLabels" -}}
app.kubernetes.io/name: {{ include "tickmesh.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "tickmesh.labels" -}}
{{ include "tickmesh.selectorLabels" . }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/part-of: tickmesh
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "tickmesh.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) -}}
{{- end -}}

{{/* The official NATS chart's fullname as it computes it for this release (the subchart is
     aliased `natscluster`, so that is its chart name): its client Service has this name. */}}
{{- define "tickmesh.natsclusterName" -}}
{{- $v := .Values.natscluster -}}
{{- if $v.fullnameOverride -}}
{{- $v.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default "natscluster" $v.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* NATS_URL: the subchart's Service, the embedded server's, or the external URL. Exactly one of
     the three must be chosen; the subchart must have been fetched (helm dependency build). */}}
{{- define "tickmesh.natsUrl" -}}
{{- $cluster := .Values.natscluster.enabled -}}
{{- if gt (len (without (list $cluster .Values.nats.embedded (ne .Values.nats.url "")) false)) 1 -}}
{{- fail "choose one NATS: natscluster.enabled (the official chart), nats.embedded (a single node) or nats.url (an existing one)" -}}
{{- end -}}
{{- if $cluster -}}
{{- if not (hasKey .Subcharts "natscluster") -}}
{{- fail "natscluster.enabled but the NATS chart is not in charts/: run `helm dependency build helm/tickmesh` (or set natscluster.enabled=false with nats.embedded or nats.url)" -}}
{{- end -}}
{{- if not (and .Values.natscluster.config.cluster.enabled .Values.natscluster.config.jetstream.enabled) -}}
{{- fail "natscluster needs config.cluster.enabled and config.jetstream.enabled: tickmesh keeps its streams and buckets in JetStream" -}}
{{- end -}}
{{- printf "nats://%s:%d" (include "tickmesh.natsclusterName" .) (int (dig "config" "nats" "port" 4222 .Values.natscluster)) -}}
{{- else if .Values.nats.embedded -}}
{{- printf "nats://%s:4222" (include "tickmesh.componentName" (dict "root" . "component" "nats")) -}}
{{- else -}}
{{- required "NATS: set natscluster.enabled, nats.embedded or nats.url" (.Values.nats.url | default "") -}}
{{- end -}}
{{- end -}}

{{/* TICKMESH_STREAM_REPLICAS: nats.streamReplicas, else the subchart's cluster size (JetStream
     allows at most 5), else 1. */}}
{{- define "tickmesh.streamReplicas" -}}
{{- if not (kindIs "invalid" .Values.nats.streamReplicas) -}}
{{- .Values.nats.streamReplicas | int -}}
{{- else if .Values.natscluster.enabled -}}
{{- min 5 (.Values.natscluster.config.cluster.replicas | int) -}}
{{- else -}}
1
{{- end -}}
{{- end -}}

{{/* One setting value as its environment variable's text: lists comma-joined, whole numbers
     without an exponent (YAML numbers reach templates as float64), booleans as true/false. */}}
{{- define "tickmesh.envValue" -}}
{{- $v := . -}}
{{- if kindIs "slice" $v -}}
{{- join "," $v -}}
{{- else if kindIs "float64" $v -}}
{{- if eq $v (float64 (int64 $v)) -}}{{- int64 $v -}}{{- else -}}{{- $v -}}{{- end -}}
{{- else -}}
{{- $v -}}
{{- end -}}
{{- end -}}

{{/* Whether a settings value is set: null and [] keep the code's default. */}}
{{- define "tickmesh.isSet" -}}
{{- if kindIs "invalid" . -}}
{{- else if and (kindIs "slice" .) (eq (len .) 0) -}}
{{- else -}}true{{- end -}}
{{- end -}}

{{/*
The env list of one component: (dict "root" $ "component" NAME "values" VALUES "fixed" DICT), and
"service" NAME when the component is an instance of a service under another name (its settings
keys are the service's). With natsAuth.enabled it connects as the NATS user of its role (the
service's name, or "natsUser"), its password from natsAuth.secret, and leaves the streams to the
admin Job.
Order of precedence, lowest first: shared values (logging, metrics, tracing, NATS), the
component's `settings` (through settings-map.yaml), the top-level `env`, the component's `env`,
then `fixed` (what the chart must control, e.g. EDGE_HOST). Each variable appears once.
*/}}
{{- define "tickmesh.env" -}}
{{- $root := .root -}}
{{- $component := .component -}}
{{- $maps := $root.Files.Get "settings-map.yaml" | fromYaml -}}
{{- $map := index $maps (.service | default $component) | default dict -}}
{{- $env := dict -}}
{{- $_ := set $env "NATS_URL" (include "tickmesh.natsUrl" $root) -}}
{{- $_ := set $env "TICKMESH_STREAM_REPLICAS" (include "tickmesh.streamReplicas" $root) -}}
{{- $natsUser := .natsUser | default (.service | default $component) -}}
{{- if $root.Values.natsAuth.enabled -}}
{{- $_ := set $env "NATS_USER" $natsUser -}}
{{- if ne $natsUser "admin" -}}
{{- $_ := set $env "TICKMESH_STREAMS_MANAGE" "off" -}}
{{- $_ := set $env "TICKMESH_STREAMS_WAIT_S" (include "tickmesh.envValue" $root.Values.natsAuth.waitSeconds) -}}
{{- end -}}
{{- end -}}
{{- $_ := set $env "TICKMESH_LOG_FORMAT" (toString $root.Values.logging.format) -}}
{{- $_ := set $env "TICKMESH_LOG_LEVEL" (toString $root.Values.logging.level) -}}
{{- $_ := set $env "TICKMESH_TRACE_SAMPLE_RATIO" (include "tickmesh.envValue" $root.Values.tracing.sampleRatio) -}}
{{- if $root.Values.tracing.otlpEndpoint -}}
{{- $_ := set $env "OTEL_EXPORTER_OTLP_ENDPOINT" $root.Values.tracing.otlpEndpoint -}}
{{- end -}}
{{- $_ := set $env "OTEL_SERVICE_NAME" (printf "tickmesh-%s" $component) -}}
{{- $_ := set $env "OTEL_RESOURCE_ATTRIBUTES" "k8s.pod.name=$(POD_NAME),k8s.namespace.name=$(POD_NAMESPACE)" -}}
{{- range $key, $val := (.values.settings | default dict) -}}
{{- if not (hasKey $map $key) -}}
{{- fail (printf "%s.settings.%s is not a first-class setting (see settings-map.yaml); use %s.env with the environment variable instead" $component $key $component) -}}
{{- end -}}
{{- if include "tickmesh.isSet" $val -}}
{{- $_ := set $env (index $map $key) (include "tickmesh.envValue" $val) -}}
{{- end -}}
{{- end -}}
{{- range $name, $val := ($root.Values.env | default dict) -}}
{{- $_ := set $env $name (include "tickmesh.envValue" $val) -}}
{{- end -}}
{{- range $name, $val := (.values.env | default dict) -}}
{{- $_ := set $env $name (include "tickmesh.envValue" $val) -}}
{{- end -}}
{{- range $name, $val := (.fixed | default dict) -}}
{{- $_ := set $env $name (toString $val) -}}
{{- end -}}
- name: POD_NAME
  valueFrom:
    fieldRef:
      fieldPath: metadata.name
- name: POD_NAMESPACE
  valueFrom:
    fieldRef:
      fieldPath: metadata.namespace
{{- if $root.Values.natsAuth.enabled }}
- name: NATS_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ $root.Values.natsAuth.secret }}
      key: {{ $natsUser }}
{{- end }}
{{- range $name, $val := $env }}
- name: {{ $name }}
  value: {{ $val | quote }}
{{- end }}
{{- end -}}

{{/* natsAuth: the NATS servers this chart configures read the passwords from the same Secret
     as the components. */}}
{{- define "tickmesh.checkNatsAuth" -}}
{{- if .Values.natsAuth.enabled -}}
{{- if .Values.natscluster.enabled -}}
{{- range $name, $var := (dig "container" "env" dict .Values.natscluster) -}}
{{- if hasPrefix "TM_NATS_PW_" $name -}}
{{- if ne (dig "valueFrom" "secretKeyRef" "name" "" $var) $.Values.natsAuth.secret -}}
{{- fail (printf "natscluster.container.env.%s reads Secret %q but natsAuth.secret is %q: the NATS servers and the components must use the same one" $name (dig "valueFrom" "secretKeyRef" "name" "" $var) $.Values.natsAuth.secret) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* Scrape annotations (prometheus.io/*) for a pod serving /metrics on `port`. */}}
{{- define "tickmesh.scrapeAnnotations" -}}
{{- if .root.Values.metrics.enabled -}}
prometheus.io/scrape: "true"
prometheus.io/port: {{ .port | quote }}
prometheus.io/path: /metrics
{{- end -}}
{{- end -}}

{{- define "tickmesh.jwtSecretName" -}}
{{- if .Values.secrets.jwtExistingSecret -}}
{{- .Values.secrets.jwtExistingSecret -}}
{{- else -}}
{{- printf "%s-jwt" (include "tickmesh.fullname" .) -}}
{{- end -}}
{{- end -}}

{{- define "tickmesh.ticketSecretName" -}}
{{- if .Values.secrets.ticketExistingSecret -}}
{{- .Values.secrets.ticketExistingSecret -}}
{{- else -}}
{{- printf "%s-ticket" (include "tickmesh.fullname" .) -}}
{{- end -}}
{{- end -}}

{{/* Secrets come from Kubernetes Secrets (`secrets.*`), never from plain `env` values, which
     would land in the pod spec and the release history. */}}
{{- define "tickmesh.refuseSecretsInEnv" -}}
{{- range $name := list "TICKMESH_JWT_SECRET" "EDGE_TICKET_SECRET" -}}
{{- if or (hasKey ($.Values.env | default dict) $name) (hasKey ($.Values.edge.env | default dict) $name) -}}
{{- fail (printf "%s is a secret: set it through secrets.* (an existing Secret), not env" $name) -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "tickmesh.edgePort" -}}
{{- include "tickmesh.envValue" (.Values.edge.settings.port | default 8000) -}}
{{- end -}}

{{/* Seconds the edge may take from SIGTERM to exit: the drain deadline, rounded up, plus
     Hypercorn's 5 s graceful close. */}}
{{- define "tickmesh.edgeDrainSeconds" -}}
{{- add (.Values.edge.settings.drainDeadlineSeconds | default 10 | float64 | ceil | int) 5 -}}
{{- end -}}

{{/* preStop wait + drain + margin: longer than the drain deadline, so Kubernetes never kills an
     edge mid-drain. */}}
{{- define "tickmesh.edgeGrace" -}}
{{- if .Values.edge.terminationGracePeriodSeconds -}}
{{- $grace := .Values.edge.terminationGracePeriodSeconds | int -}}
{{- if le $grace (add (.Values.edge.preStopSeconds | int) (include "tickmesh.edgeDrainSeconds" . | int)) -}}
{{- fail (printf "edge.terminationGracePeriodSeconds (%d) must exceed preStopSeconds + drainDeadlineSeconds + 5 (%d): Kubernetes would kill edges mid-drain" $grace (add (.Values.edge.preStopSeconds | int) (include "tickmesh.edgeDrainSeconds" . | int))) -}}
{{- end -}}
{{- $grace -}}
{{- else -}}
{{- add (.Values.edge.preStopSeconds | int) (include "tickmesh.edgeDrainSeconds" . | int) (.Values.edge.graceMarginSeconds | int) -}}
{{- end -}}
{{- end -}}

{{/*
The pod template of a service: (dict "root" $ "service" NAME "component" COMPONENT "values" VALUES
"fixed" DICT). `component` names the pods (a market-feed instance is its own component).
*/}}
{{- define "tickmesh.servicePodTemplate" -}}
{{- $root := .root -}}
{{- $ctx := dict "root" $root "component" .component -}}
metadata:
  labels:
    {{- include "tickmesh.labels" $ctx | nindent 4 }}
  annotations:
    kubectl.kubernetes.io/default-container: {{ .service }}
    {{- include "tickmesh.scrapeAnnotations" (dict "root" $root "port" $root.Values.metrics.port) | nindent 4 }}
    {{- with $root.Values.serviceDefaults.podAnnotations }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
spec:
  terminationGracePeriodSeconds: {{ $root.Values.serviceDefaults.terminationGracePeriodSeconds }}
  {{- with $root.Values.imagePullSecrets }}
  imagePullSecrets:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  securityContext:
    {{- toYaml $root.Values.podSecurityContext | nindent 4 }}
  containers:
    - name: {{ .service }}
      image: {{ include "tickmesh.image" $root }}
      imagePullPolicy: {{ $root.Values.image.pullPolicy }}
      command: ["tickmesh"]
      args: ["service", {{ .service | quote }}]
      {{- if $root.Values.metrics.enabled }}
      ports:
        - name: metrics
          containerPort: {{ $root.Values.metrics.port }}
          protocol: TCP
      {{- end }}
      env:
        {{- $fixed := deepCopy (.fixed | default dict) }}
        {{- if $root.Values.metrics.enabled }}
        {{- $_ := set $fixed "METRICS_PORT" (toString $root.Values.metrics.port) }}
        {{- $_ := set $fixed "METRICS_HOST" "0.0.0.0" }}
        {{- end }}
        {{- include "tickmesh.env" (dict "root" $root "component" .component "service" .service "values" .values "fixed" $fixed) | nindent 8 }}
      securityContext:
        {{- toYaml $root.Values.containerSecurityContext | nindent 8 }}
      resources:
        {{- toYaml .values.resources | nindent 8 }}
      volumeMounts:
        - name: tmp
          mountPath: /tmp
  volumes:
    - name: tmp
      emptyDir: {}
  {{- with $root.Values.serviceDefaults.nodeSelector }}
  nodeSelector:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $root.Values.serviceDefaults.tolerations }}
  tolerations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $root.Values.serviceDefaults.affinity }}
  affinity:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end -}}
