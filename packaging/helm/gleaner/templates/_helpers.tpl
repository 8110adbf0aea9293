{{/* Chart name, truncated to the 63 characters a DNS label allows. */}}
{{- define "gleaner.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name: release-chart unless the release name already contains the chart name. */}}
{{- define "gleaner.fullname" -}}
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

{{- define "gleaner.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "gleaner.selectorLabels" -}}
app.kubernetes.io/name: {{ include "gleaner.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "gleaner.labels" -}}
helm.sh/chart: {{ include "gleaner.chart" . }}
{{ include "gleaner.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/component: server
{{- end }}

{{- define "gleaner.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "gleaner.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "gleaner.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) }}
{{- end }}

{{/* Name of the Secret holding the admin token, or "" when there is none. */}}
{{- define "gleaner.adminTokenSecret" -}}
{{- if .Values.adminToken.existingSecret }}
{{- .Values.adminToken.existingSecret }}
{{- else if .Values.adminToken.value }}
{{- include "gleaner.fullname" . }}
{{- end }}
{{- end }}

{{/* Environment shared by the server and the restore init container. */}}
{{- define "gleaner.env" -}}
- name: GLEANER_CONFIG
  value: /etc/gleaner/gleaner.toml
- name: GLEANER_HTTP__LISTEN
  value: "0.0.0.0:8080"
- name: GLEANER_STORE__DATA_DIR
  value: /var/lib/gleaner
{{- with include "gleaner.adminTokenSecret" . }}
- name: GLEANER_HTTP__ADMIN_TOKEN
  valueFrom:
    secretKeyRef:
      name: {{ . }}
      key: {{ $.Values.adminToken.secretKey }}
{{- end }}
{{- if .Values.replication.enabled }}
{{- /* Each pod is its own shard: it replicates under <url>/<pod name>. */}}
- name: POD_NAME
  valueFrom:
    fieldRef:
      fieldPath: metadata.name
- name: GLEANER_REPLICATE__URL
  value: {{ include "gleaner.replicaUrl" (list . .Values.replication.url) | quote }}
{{- with .Values.replication.secondUrl }}
- name: GLEANER_REPLICATE__SECOND_URL
  value: {{ include "gleaner.replicaUrl" (list $ .) | quote }}
{{- end }}
{{- with .Values.replication.credentials.existingSecret }}
- name: GLEANER_REPLICATE__S3__ACCESS_KEY_ID
  valueFrom:
    secretKeyRef:
      name: {{ . }}
      key: {{ $.Values.replication.credentials.accessKeyIdKey }}
- name: GLEANER_REPLICATE__S3__SECRET_ACCESS_KEY
  valueFrom:
    secretKeyRef:
      name: {{ . }}
      key: {{ $.Values.replication.credentials.secretAccessKeyKey }}
{{- end }}
{{- end }}
{{- with .Values.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* A replica prefix for this pod: (list $ url) → "<url>/$(POD_NAME)"; Kubernetes expands
     $(POD_NAME) from the env var defined before it. */}}
{{- define "gleaner.replicaUrl" -}}
{{- $url := index . 1 }}
{{- if not (regexMatch "^(s3://[^/?#]+(/[^?#]*)?|file:///[^?#]*)$" $url) }}
{{- fail (printf "replication.url / replication.secondUrl must be s3://bucket/prefix or file:///dir without a query string (S3 settings go under replication.s3), got %q" $url) }}
{{- end }}
{{- printf "%s/$(POD_NAME)" (trimSuffix "/" $url) }}
{{- end }}
