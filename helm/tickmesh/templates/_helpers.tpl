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

{{/* NATS_URL: the embedded server's Service, or the external URL (required then). */}}
{{- define "tickmesh.natsUrl" -}}
{{- if .Values.nats.embedded -}}
{{- printf "nats://%s:4222" (include "tickmesh.componentName" (dict "root" . "component" "nats")) -}}
{{- else -}}
{{- required "nats.url is required when nats.embedded is false" .Values.nats.url -}}
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
The env list of one component: (dict "root" $ "component" NAME "values" VALUES "fixed" DICT).
Order of precedence, lowest first: shared values (logging, metrics, tracing, NATS), the
component's `settings` (through settings-map.yaml), the top-level `env`, the component's `env`,
then `fixed` (what the chart must control, e.g. EDGE_HOST). Each variable appears once.
*/}}
{{- define "tickmesh.env" -}}
{{- $root := .root -}}
{{- $component := .component -}}
{{- $maps := $root.Files.Get "settings-map.yaml" | fromYaml -}}
{{- $map := index $maps $component | default dict -}}
{{- $env := dict -}}
{{- $_ := set $env "NATS_URL" (include "tickmesh.natsUrl" $root) -}}
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
{{- range $name, $val := $env }}
- name: {{ $name }}
  value: {{ $val | quote }}
{{- end }}
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

{{/* preStop + drain deadline + Hypercorn's 5 s graceful timeout + margin, rounded up. */}}
{{- define "tickmesh.edgeGrace" -}}
{{- if .Values.edge.terminationGracePeriodSeconds -}}
{{- .Values.edge.terminationGracePeriodSeconds | int -}}
{{- else -}}
{{- $drain := .Values.edge.settings.drainDeadlineSeconds | default 10 | float64 | ceil | int -}}
{{- add (.Values.edge.preStopSeconds | int) $drain 5 (.Values.edge.graceMarginSeconds | int) -}}
{{- end -}}
{{- end -}}
