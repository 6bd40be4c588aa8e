{{/* The release's full name, at most 63 characters. */}}
{{- define "trimtab.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "trimtab.labels" -}}
app.kubernetes.io/name: trimtab
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "trimtab.selectorLabels" -}}
app.kubernetes.io/name: trimtab
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end -}}

{{- define "trimtab.serviceAccountName" -}}
{{- default (include "trimtab.fullname" .) .Values.serviceAccount.name -}}
{{- end -}}

{{- define "trimtab.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{/* The Redis URL of the operator: the bundled Redis's Service, or redis.url. */}}
{{- define "trimtab.redisUrl" -}}
{{- if .Values.redis.bundled.enabled -}}
{{- printf "redis://%s-redis.%s.svc:6379/0" (include "trimtab.fullname" .) .Release.Namespace -}}
{{- else -}}
{{- required "redis.url is required unless redis.bundled.enabled is true" .Values.redis.url -}}
{{- end -}}
{{- end -}}

{{/* Settings that cannot be combined; each fails the render with the reason. */}}
{{- define "trimtab.validate" -}}
{{- if and .Values.redis.bundled.enabled .Values.redis.tls.caSecret -}}
{{- fail "redis.tls applies to an external Redis; the bundled Redis serves plain TCP inside the cluster" -}}
{{- end -}}
{{- $url := include "trimtab.redisUrl" . -}}
{{- if and .Values.redis.tls.caSecret (not (or (hasPrefix "rediss://" $url) (hasPrefix "rediss+sentinel://" $url))) -}}
{{- fail "redis.tls.caSecret is set but redis.url is not rediss:// or rediss+sentinel://" -}}
{{- end -}}
{{- if and .Values.redis.auth.namespaceUsers (not .Values.redis.bundled.enabled) -}}
{{- fail "redis.auth.namespaceUsers configures the bundled Redis; for an external Redis, create each user with `trimtab redis grant NAMESPACE`" -}}
{{- end -}}
{{- with .Values.redis.auth.namespaceUsers -}}
{{- if not $.Values.watchNamespaces -}}
{{- fail "redis.auth.namespaceUsers needs watchNamespaces: a cluster-wide operator's workers in other namespaces would name a user Secret that does not exist there" -}}
{{- end -}}
{{- range $.Values.watchNamespaces -}}
{{- if not (has . $.Values.redis.auth.namespaceUsers) -}}
{{- fail (printf "redis.auth.namespaceUsers must list every watched namespace; %s is missing" .) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* Labels of every pool's worker pods, as the operator sets them (trimtab.reconcile.naming). */}}
{{- define "trimtab.workerSelectorLabels" -}}
app.kubernetes.io/name: trimtab-worker
app.kubernetes.io/managed-by: trimtab-operator
{{- end -}}

{{- define "trimtab.redisSelectorLabels" -}}
app.kubernetes.io/name: trimtab
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: redis
{{- end -}}

{{/* Egress to DNS, which every pod the chart covers needs to resolve Redis and endpoints. */}}
{{- define "trimtab.dnsEgress" -}}
- ports:
    - port: 53
      protocol: UDP
    - port: 53
      protocol: TCP
{{- end -}}

{{/* Egress to Redis: the bundled Redis's pods, or any address on the external port. */}}
{{- define "trimtab.redisEgress" -}}
{{- if .Values.redis.bundled.enabled -}}
- to:
    - namespaceSelector:
        matchLabels:
          kubernetes.io/metadata.name: {{ .Release.Namespace }}
      podSelector:
        matchLabels:
          {{- include "trimtab.redisSelectorLabels" . | nindent 10 }}
  ports:
    - port: 6379
      protocol: TCP
{{- else -}}
- ports:
    - port: {{ .Values.networkPolicy.redisPort }}
      protocol: TCP
{{- end -}}
{{- end -}}

{{/* Ingress to a metrics port from metricsFrom, or from anywhere. */}}
{{- define "trimtab.metricsIngress" -}}
- ports:
    - port: metrics
      protocol: TCP
  {{- with .Values.networkPolicy.metricsFrom }}
  from:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end -}}

{{/*
The bundled Redis's maxmemory: the value given, or three quarters of the container's
memory limit (Mi or Gi), so a full Redis refuses writes before the kernel kills it.
*/}}
{{- define "trimtab.redisMaxmemory" -}}
{{- $bundled := .Values.redis.bundled -}}
{{- $limit := toString (($bundled.resources.limits | default dict).memory | default "") -}}
{{- if $bundled.maxmemory -}}
{{ $bundled.maxmemory }}
{{- else if hasSuffix "Gi" $limit -}}
{{ div (mul (trimSuffix "Gi" $limit | int) 1024 3) 4 }}mb
{{- else if hasSuffix "Mi" $limit -}}
{{ div (mul (trimSuffix "Mi" $limit | int) 3) 4 }}mb
{{- else -}}
{{ fail "redis.bundled.resources.limits.memory must be given in Mi or Gi, or set redis.bundled.maxmemory" }}
{{- end -}}
{{- end -}}

{{/*
The Secret in the release namespace with the Redis password the operator uses: the one
given, or with the bundled Redis the one the chart generates (redis-auth.yaml); empty: none.
*/}}
{{- define "trimtab.redisPasswordSecret" -}}
{{- if .Values.redis.auth.existingSecret -}}
{{ .Values.redis.auth.existingSecret }}
{{- else if .Values.redis.bundled.enabled -}}
{{ include "trimtab.fullname" . }}-redis-auth
{{- end -}}
{{- end -}}

{{/*
Namespaces whose workers get their own user of the bundled Redis, confined to their keys
(trimtab.queue.acl), as a JSON list: redis.auth.namespaceUsers, else watchNamespaces.
*/}}
{{- define "trimtab.redisUserNamespaces" -}}
{{- if .Values.redis.bundled.enabled -}}
{{ default .Values.watchNamespaces .Values.redis.auth.namespaceUsers | toJson }}
{{- else -}}
[]
{{- end -}}
{{- end -}}

{{/* The Secret every namespace user's password and name are in, in its own namespace. */}}
{{- define "trimtab.redisUserSecret" -}}
{{- default (printf "%s-redis-user" (include "trimtab.fullname" .)) .Values.redis.auth.workerSecret -}}
{{- end -}}

{{/*
The Secret workers read the Redis password from, in their own namespace: a namespace
user's, else workerSecret, else the operator's (which the admin copies there).
*/}}
{{- define "trimtab.redisWorkerSecret" -}}
{{- if ne (include "trimtab.redisUserNamespaces" .) "[]" -}}
{{ include "trimtab.redisUserSecret" . }}
{{- else -}}
{{ default (include "trimtab.redisPasswordSecret" .) .Values.redis.auth.workerSecret }}
{{- end -}}
{{- end -}}

{{- define "trimtab.apiSelectorLabels" -}}
app.kubernetes.io/name: trimtab
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: api
{{- end -}}

{{/* The Redis password of the operator and the API server, as container env entries. */}}
{{- define "trimtab.redisClientEnv" -}}
- name: TRIMTAB_REDIS_URL
  value: {{ include "trimtab.redisUrl" . | quote }}
{{- with include "trimtab.redisPasswordSecret" . }}
- name: TRIMTAB_REDIS_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ . }}
      key: {{ $.Values.redis.auth.secretKey }}
{{- end }}
{{- with .Values.redis.tls.caSecret }}
- name: TRIMTAB_REDIS_CA_FILE
  value: /etc/trimtab/redis-ca/ca.crt
{{- end }}
{{- end -}}

{{/* The OTEL_* variables of the operator: run traces over OTLP/HTTP
to tracing.otlpEndpoint (the operator passes them on to workers, with
TRIMTAB_WORKER_OTEL_ENDPOINT as they reach the collector). Nothing when tracing is off. */}}
{{- define "trimtab.tracingEnv" -}}
{{- with .Values.tracing.otlpEndpoint }}
- name: OTEL_EXPORTER_OTLP_ENDPOINT
  value: {{ . | quote }}
- name: OTEL_TRACES_SAMPLER
  value: {{ $.Values.tracing.sampler | quote }}
{{- with $.Values.tracing.samplerArg }}
- name: OTEL_TRACES_SAMPLER_ARG
  value: {{ . | quote }}
{{- end }}
{{- with $.Values.tracing.workerOtlpEndpoint }}
- name: TRIMTAB_WORKER_OTEL_ENDPOINT
  value: {{ . | quote }}
{{- end }}
{{- end }}
{{- end -}}

{{/* Egress to the trace collector's OTLP port, when tracing is on. */}}
{{- define "trimtab.tracingEgress" -}}
{{- if .Values.tracing.otlpEndpoint -}}
- ports:
    - port: {{ .Values.tracing.port }}
      protocol: TCP
{{- end -}}
{{- end -}}

{{/* Egress to the history database, when there is one. */}}
{{- define "trimtab.historyEgress" -}}
{{- if include "trimtab.historyUrl" . -}}
- ports:
    - port: {{ .Values.history.port }}
      protocol: TCP
{{- end -}}
{{- end -}}

{{/* The history database's URL and password, for the operator (which archives) and
the API server (which serves /history and /cost). */}}
{{- define "trimtab.historyEnv" -}}
{{- with include "trimtab.historyUrl" . }}
- name: TRIMTAB_HISTORY_URL
  value: {{ . | quote }}
{{- with include "trimtab.historyPasswordSecret" $ }}
- name: TRIMTAB_HISTORY_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ . }}
      key: {{ $.Values.history.passwordSecret.key }}
{{- end }}
{{- end }}
{{- end -}}

{{/* The history database's URL: history.url, or the bundled one's. */}}
{{- define "trimtab.historyUrl" -}}
{{- if .Values.history.bundled.enabled -}}
postgresql://trimtab@{{ include "trimtab.fullname" . }}-history.{{ .Release.Namespace }}.svc:5432/trimtab
{{- else -}}
{{- .Values.history.url -}}
{{- end -}}
{{- end -}}

{{/* The Secret with the history database's password: history.passwordSecret.name, or
the bundled database's generated one. */}}
{{- define "trimtab.historyPasswordSecret" -}}
{{- if .Values.history.passwordSecret.name -}}
{{- .Values.history.passwordSecret.name -}}
{{- else if .Values.history.bundled.enabled -}}
{{- include "trimtab.fullname" . }}-history
{{- end -}}
{{- end -}}

{{- define "trimtab.historySelectorLabels" -}}
app.kubernetes.io/name: trimtab
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: history
{{- end -}}

{{- define "trimtab.historyCaMount" -}}
{{- if and .Values.history.url .Values.history.caSecret }}
- name: history-ca
  mountPath: /etc/trimtab/history-ca
  readOnly: true
{{- end }}
{{- end -}}

{{- define "trimtab.historyCaVolume" -}}
{{- if and .Values.history.url .Values.history.caSecret }}
- name: history-ca
  secret:
    secretName: {{ .Values.history.caSecret }}
    items:
      - key: ca.crt
        path: ca.crt
{{- end }}
{{- end -}}
