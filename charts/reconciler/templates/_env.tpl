{{/*
The operator container's environment: the variables the chart sets from the values, and the
check that `extraEnv` sets none of them again (a second entry of one name silently overrides
or is overridden by the chart's, depending on the client).
*/}}

{{/* "true" when the tokens are read from files of the mounted Secret. */}}
{{- define "reconciler.credentialsAsFiles" -}}
{{- if and .Values.credentials.existingSecret .Values.credentials.mountAsFiles }}true{{ end }}
{{- end }}

{{- define "reconciler.credentialsDir" -}}
/etc/reconciler/credentials
{{- end }}

{{/*
The env entries the chart sets for one Deployment, as a YAML list at column 0 (argument:
dict "root" $ "shard" <an entry of reconciler.shards>).
*/}}
{{- define "reconciler.env" -}}
{{- $root := .root }}
{{- $shard := .shard }}
{{- $secret := $root.Values.credentials.existingSecret }}
{{- $asFiles := include "reconciler.credentialsAsFiles" $root }}
{{- $credentialsDir := include "reconciler.credentialsDir" $root }}
{{- /* The tokens: variables, or files of the mounted Secret read at every reconcile. */ -}}
{{- $tokens := dict
      "RECONCILER_NOVACORE_TOKEN" $root.Values.credentials.keys.novacoreToken
      "RECONCILER_ENAPTER_TOKEN" $root.Values.credentials.keys.enapterToken
      "RECONCILER_FLATPEAK_API_KEY" $root.Values.credentials.keys.flatpeakApiKey }}
{{- $credentials := dict
      "RECONCILER_NOVACORE_IDENTITY" $root.Values.credentials.keys.novacoreIdentity
      "RECONCILER_FLATPEAK_ACCOUNT_ID" $root.Values.credentials.keys.flatpeakAccountId }}
{{- if not $asFiles }}
{{- $credentials = merge $credentials $tokens }}
{{- end }}
{{- $settings := dict
      "RECONCILER_NOVACORE_URL" $root.Values.endpoints.novacore
      "RECONCILER_ENAPTER_URL" $root.Values.endpoints.enapter
      "RECONCILER_FLATPEAK_URL" $root.Values.endpoints.flatpeak
      "RECONCILER_CONCURRENCY" $root.Values.limits.concurrency
      "RECONCILER_GATEWAY_CONCURRENCY" $root.Values.limits.gatewayConcurrency
      "RECONCILER_GATEWAY_RATE" $root.Values.limits.gatewayRate
      "RECONCILER_TIMEOUT" $root.Values.limits.timeout
      "RECONCILER_MODBUS_TIMEOUT" $root.Values.limits.modbusTimeout
      "RECONCILER_RETRIES" $root.Values.limits.retries }}
{{- $gatewayUrls := list }}
{{- range $serial, $url := $root.Values.gatewayUrls }}
{{- $gatewayUrls = append $gatewayUrls (printf "%s=%s" $serial $url) }}
{{- end }}
# kopf's identity among peers (otherwise user@host, which needs a passwd entry).
- name: POD_ID
  valueFrom:
    fieldRef:
      fieldPath: metadata.name
- name: RECONCILER_STATE_DIR
  value: {{ $root.Values.stateDir | quote }}
- name: RECONCILER_OPERATOR_MODE
  value: {{ $root.Values.mode | quote }}
- name: RECONCILER_OPERATOR_INTERVAL
  value: {{ include "reconciler.envValue" $root.Values.reconcileInterval | quote }}
- name: RECONCILER_OPERATOR_RETRY_DELAY
  value: {{ include "reconciler.envValue" $root.Values.retryDelay | quote }}
- name: RECONCILER_OPERATOR_WATCH_FAILURE_LIMIT
  value: {{ include "reconciler.envValue" $root.Values.watchFailureLimit | quote }}
{{- with $shard.selector }}
- name: RECONCILER_OPERATOR_SHARD
  value: {{ . | quote }}
{{- end }}
{{- with include "reconciler.passwordEnv" $root }}
- name: RECONCILER_OPERATOR_PASSWORD_ENV
  value: {{ . | quote }}
{{- end }}
{{- if include "reconciler.peering" $root }}
- name: RECONCILER_OPERATOR_PEERING
  value: {{ $shard.fullname | quote }}
{{- end }}
{{- range $name, $value := $settings }}
{{- if ne (toString $value) "" }}
- name: {{ $name }}
  value: {{ include "reconciler.envValue" $value | quote }}
{{- end }}
{{- end }}
{{- with $gatewayUrls }}
- name: RECONCILER_GATEWAY_URLS
  value: {{ join "," . | quote }}
{{- end }}
{{- if $root.Values.caBundle.configMap }}
- name: RECONCILER_CA_BUNDLE
  value: {{ printf "/etc/reconciler/ca/%s" $root.Values.caBundle.key | quote }}
{{- end }}
{{- if $secret }}
{{- range $name, $key := $credentials }}
{{- if $key }}
- name: {{ $name }}
  valueFrom:
    secretKeyRef:
      name: {{ $secret | quote }}
      key: {{ $key | quote }}
      optional: true
{{- end }}
{{- end }}
{{- end }}
{{- if $asFiles }}
{{- range $name, $key := $tokens }}
{{- if $key }}
- name: {{ $name }}_FILE
  value: {{ printf "%s/%s" $credentialsDir $key | quote }}
{{- end }}
{{- end }}
{{- end }}
- name: RECONCILER_OPERATOR_CREDENTIAL_KEY
  valueFrom:
    secretKeyRef:
      name: {{ $root.Values.credentialKey.existingSecret | default (printf "%s-credential-key" (include "reconciler.fullname" $root)) | quote }}
      key: {{ $root.Values.credentialKey.key | quote }}
{{- end }}

{{/*
Where each variable reconciler.env may set comes from, for the message that refuses it in
`extraEnv`. Only the wording: which names are refused is what reconciler.env rendered, so a
name missing here is still refused, with a plainer message.
*/}}
{{- define "reconciler.envSources" -}}
{{- $sources := dict
      "POD_ID" "from the pod's name (kopf's identity among peers); remove it from extraEnv"
      "RECONCILER_STATE_DIR" "from stateDir; set it there"
      "RECONCILER_OPERATOR_MODE" "from mode; set it there"
      "RECONCILER_OPERATOR_INTERVAL" "from reconcileInterval; set it there"
      "RECONCILER_OPERATOR_RETRY_DELAY" "from retryDelay; set it there"
      "RECONCILER_OPERATOR_WATCH_FAILURE_LIMIT" "from watchFailureLimit; set it there"
      "RECONCILER_OPERATOR_SHARD" "from shard.selector (or the selector of each of shards); set it there"
      "RECONCILER_OPERATOR_PASSWORD_ENV" "from passwordEnv; set it there"
      "RECONCILER_OPERATOR_PEERING" "when peering is on (peering.enabled, or more than one replica), naming the Deployment's peering object; remove it from extraEnv"
      "RECONCILER_NOVACORE_URL" "from endpoints.novacore; set it there"
      "RECONCILER_ENAPTER_URL" "from endpoints.enapter; set it there"
      "RECONCILER_FLATPEAK_URL" "from endpoints.flatpeak; set it there"
      "RECONCILER_CONCURRENCY" "from limits.concurrency; set it there"
      "RECONCILER_GATEWAY_CONCURRENCY" "from limits.gatewayConcurrency; set it there"
      "RECONCILER_GATEWAY_RATE" "from limits.gatewayRate; set it there"
      "RECONCILER_TIMEOUT" "from limits.timeout; set it there"
      "RECONCILER_MODBUS_TIMEOUT" "from limits.modbusTimeout; set it there"
      "RECONCILER_RETRIES" "from limits.retries; set it there"
      "RECONCILER_GATEWAY_URLS" "from gatewayUrls; set it there"
      "RECONCILER_CA_BUNDLE" "from caBundle.configMap and caBundle.key; set them there"
      "RECONCILER_OPERATOR_CREDENTIAL_KEY" "from credentialKey.existingSecret and credentialKey.key; set them there" }}
{{- $keys := dict
      "RECONCILER_NOVACORE_IDENTITY" "novacoreIdentity"
      "RECONCILER_FLATPEAK_ACCOUNT_ID" "flatpeakAccountId" }}
{{- $tokenKeys := dict
      "RECONCILER_NOVACORE_TOKEN" "novacoreToken"
      "RECONCILER_ENAPTER_TOKEN" "enapterToken"
      "RECONCILER_FLATPEAK_API_KEY" "flatpeakApiKey" }}
{{- range $name, $key := merge $keys $tokenKeys }}
{{- $_ := set $sources $name (printf "from the Secret credentials.existingSecret, key credentials.keys.%s; set the key there, or set credentials.keys.%s to \"\" to set the variable in extraEnv" $key $key) }}
{{- end }}
{{- range $name, $key := $tokenKeys }}
{{- $_ := set $sources (printf "%s_FILE" $name) (printf "from credentials.keys.%s (credentials.mountAsFiles); set the key there, or set credentials.keys.%s to \"\" to set the variable in extraEnv" $key $key) }}
{{- end }}
{{- toYaml $sources }}
{{- end }}

{{/*
Fails the render when an `extraEnv` entry names a variable of `env` (the list
reconciler.env rendered) or one listed before it, saying where to set it instead (argument:
dict "root" $ "env" <the list>).
*/}}
{{- define "reconciler.checkExtraEnv" -}}
{{- $set := dict }}
{{- range .env }}
{{- $_ := set $set .name true }}
{{- end }}
{{- $sources := include "reconciler.envSources" .root | fromYaml }}
{{- $listed := dict }}
{{- range .root.Values.extraEnv }}
{{- if hasKey $set .name }}
{{- fail (printf "extraEnv: %s is set by the chart %s" .name (get $sources .name | default "itself; remove it from extraEnv")) }}
{{- end }}
{{- if hasKey $listed .name }}
{{- fail (printf "extraEnv: %s is listed twice; keep one entry" .name) }}
{{- end }}
{{- $_ := set $listed .name true }}
{{- end }}
{{- end }}
