{{/* Names, labels and the derived settings the templates share. */}}

{{- define "reconciler.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "reconciler.fullname" -}}
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

{{- define "reconciler.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "reconciler.selectorLabels" -}}
app.kubernetes.io/name: {{ include "reconciler.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "reconciler.labels" -}}
helm.sh/chart: {{ include "reconciler.chart" . }}
{{ include "reconciler.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "reconciler.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "reconciler.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* <repository>@<digest> when a digest pins the image, else <repository>:<tag>. */}}
{{- define "reconciler.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/*
A value as the text of an environment variable the operator reads. helm has every number of
a values file as a float64, which Go prints in exponent form from a million on ("1e+06"),
and the operator takes whole-number settings in digits only: a whole number is written in
digits (exact at any size), any other number in the shortest form that reads back as the
same number (2.5, 0.001; exponent form below 0.000001 only, which the operator reads), and
a string as it is.
*/}}
{{- define "reconciler.envValue" -}}
{{- if kindIs "float64" . }}
{{- if eq (floor .) . }}{{ printf "%.0f" . }}{{ else }}{{ toJson . }}{{ end }}
{{- else }}
{{- toString . }}
{{- end }}
{{- end }}

{{/*
The Deployments to render, as YAML `{shards: [{name, selector, replicas, suffix, fullname}]}`:
one per entry of .Values.shards, or a single one (name "", suffix "") from .Values.shard.
`fullname` names the shard's Deployment and its kopf peering object (see reconciler.shardName).
*/}}
{{- define "reconciler.shards" -}}
{{- $shards := list }}
{{- if .Values.shards }}
{{- $seen := dict }}
{{- range .Values.shards }}
{{- if hasKey $seen .name }}
{{- fail (printf "shards: the name %q is used twice" .name) }}
{{- end }}
{{- $_ := set $seen .name true }}
{{- $replicas := ternary .replicas $.Values.replicas (hasKey . "replicas") }}
{{- $shards = append $shards (dict "name" .name "selector" .selector "replicas" $replicas "suffix" (printf "-%s" .name)) }}
{{- end }}
{{- else }}
{{- $shards = append $shards (dict "name" "" "selector" .Values.shard.selector "replicas" .Values.replicas "suffix" "") }}
{{- end }}
{{- /* A selector of terms kopf's filter of the handlers cannot match would have the
operator serve nothing: refused here, as the operator refuses it at start-up. */}}
{{- $term := "\\s*([a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?\\s*(==?\\s*([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?\\s*)?" }}
{{- range $shards }}
{{- if and .selector (not (regexMatch (printf "^(%s(,%s)*)$" $term $term) .selector)) }}
{{- fail (printf "%s: %q is not a selector the operator matches: use key=value and key terms separated by commas (not !=, in, notin nor !key)" (ternary (printf "shards[%s].selector" .name) "shard.selector" (ne .name "")) .selector) }}
{{- end }}
{{- end }}
{{- /* A guard: with the hash, two shards of one name are next to impossible. */}}
{{- $names := dict }}
{{- range $shards }}
{{- $name := include "reconciler.shardName" (dict "root" $ "suffix" .suffix) }}
{{- if hasKey $names $name }}
{{- fail (printf "shards %q and %q would both be named %q: shorten fullnameOverride (or the release name) or the shard names" (get $names $name) .name $name) }}
{{- end }}
{{- $_ := set $names $name .name }}
{{- $_ := set . "fullname" $name }}
{{- end }}
{{- toYaml (dict "shards" $shards) }}
{{- end }}

{{/*
The name of a shard's Deployment and of its kopf peering object (the operator's
RECONCILER_OPERATOR_PEERING): <fullname><suffix> (argument: dict "root" $ "suffix" "-<shard>").
At most 63 characters, a DNS-1123 label: Kubernetes checks Deployment names only as DNS
subdomains (253) but advises labels, since the name starts the pods' names and host names;
the peering objects (custom resources, DNS subdomains) take the same name. A longer name is
not cut at 63, which would give shards that differ only at the end one name: it keeps the
suffix whole, shortens the fullname and puts between them the first 8 hex digits of the
SHA-256 of the whole name, so each shard keeps its own name, the same at every render.
*/}}
{{- define "reconciler.shardName" -}}
{{- $fullname := include "reconciler.fullname" .root }}
{{- $whole := printf "%s%s" $fullname .suffix }}
{{- if le (len $whole) 63 }}
{{- $whole }}
{{- else }}
{{- $prefix := $fullname | trunc (int (sub 63 (add 9 (len .suffix)))) | trimSuffix "-" }}
{{- printf "%s-%s%s" $prefix ($whole | sha256sum | trunc 8) .suffix }}
{{- end }}
{{- end }}

{{/* "true" when the operators peer: asked for, or any Deployment has several replicas. */}}
{{- define "reconciler.peering" -}}
{{- $on := .Values.peering.enabled }}
{{- range (include "reconciler.shards" . | fromYaml).shards }}
{{- if gt (int .replicas) 1 }}{{ $on = true }}{{ end }}
{{- end }}
{{- if $on }}true{{ end }}
{{- end }}

{{/* The rules on our custom resources, for a ClusterRole or a Role. */}}
{{- define "reconciler.resourceRules" -}}
# Watch and handle Sites, Gateways, Devices and DERs; kopf merge-patches them (finalizer,
# its annotations), the operator the annotation of a renamed object's new name
# (takes-over-from), and neither creates, replaces or deletes them. The operator reads a
# renamed Device's new name before it deletes the old one's config Secret.
- apiGroups: [energy.reconciler.dev]
  resources: [sites, gateways, devices, ders]
  verbs: [get, list, watch, patch]
# Conditions, observedGeneration and the plan go to the status subresource.
- apiGroups: [energy.reconciler.dev]
  resources: [sites/status, gateways/status, devices/status, ders/status]
  verbs: [get, patch]
# kopf posts core/v1 Events for the actions taken (POST only).
- apiGroups: [""]
  resources: [events]
  verbs: [create]
# MQTT passwords named by passwordFrom.secretKeyRef, read one by one (never listed);
# with rbac.writeConfigSecrets, also the Secrets that hold Enapter configs
# (enapter.configOutput.secretName), created or replaced by the operator, and deleted
# with the Enapter device of a Device released (deletionPolicy: Release).
- apiGroups: [""]
  resources: [secrets]
  verbs: {{ if .Values.rbac.writeConfigSecrets }}[get, create, update, delete]{{ else }}[get]{{ end }}
{{- end }}

{{/*
RECONCILER_OPERATOR_PASSWORD_ENV: the names of .Values.passwordEnv joined by commas. A name
of the reconciler's own settings fails the render with the reason (values.schema.json checks
the names' form; its `not` would only say "'not' failed"). The operator checks it again.
*/}}
{{- define "reconciler.passwordEnv" -}}
{{- range .Values.passwordEnv }}
{{- if hasPrefix "RECONCILER_" (upper .) }}
{{- fail (printf "passwordEnv: %s may not be listed: names starting with RECONCILER_, in any letter case, are the reconciler's own settings (its cloud tokens and keys), which no Device may read; list only variables that hold MQTT passwords" .) }}
{{- end }}
{{- end }}
{{- join "," .Values.passwordEnv }}
{{- end }}
