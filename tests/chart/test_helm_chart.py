"""The Helm chart, linted and rendered by a real helm: every object is schema-valid, the
Deployment is locked down, and what it passes to the container is what the code reads."""

from __future__ import annotations

import base64
import dataclasses
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from chart_render import (
    CHART,
    CREDENTIALS,
    NAMESPACE,
    RELEASE,
    REPO,
    SCENARIOS,
    SHARDS,
    Rendered,
    env_of,
    peering_on,
    plain_env,
    run_helm,
    shards_of,
    template,
    values_file,
)
from kube_schema import CrdSet, model_for, validate_builtin

from reconciler.cli import operator_cmd
from reconciler.cli.main import build_parser
from reconciler.engine.config import Settings, load_settings
from reconciler.model import env_names
from reconciler.model.gateway import ZAP_SERIAL_PATTERN
from reconciler.operator import config as operator_config

Render = Callable[..., Rendered]
FULLNAME = f"{RELEASE}-reconciler"
# Kinds that live in a namespace (all others the chart renders are cluster-scoped).
NAMESPACED = {"ServiceAccount", "Deployment", "Role", "RoleBinding", "KopfPeering", "Secret"}
CREDENTIAL_VARS = {
    "RECONCILER_NOVACORE_TOKEN": "novacore-token",
    "RECONCILER_NOVACORE_IDENTITY": "novacore-identity",
    "RECONCILER_ENAPTER_TOKEN": "enapter-token",
    "RECONCILER_FLATPEAK_ACCOUNT_ID": "flatpeak-account-id",
    "RECONCILER_FLATPEAK_API_KEY": "flatpeak-api-key",
}
# The credentials the chart may give as files of the mounted Secret instead
# (`credentials.mountAsFiles`): RECONCILER_<name>_FILE.
FILE_VARS = {f"{name}_FILE": name for name in ("RECONCILER_NOVACORE_TOKEN",
                                                "RECONCILER_ENAPTER_TOKEN",
                                                "RECONCILER_FLATPEAK_API_KEY")}
# Every variable the code reads: the engine's settings and the operator's config.
ENGINE_VARS = ({f"RECONCILER_{f.name.upper()}" for f in dataclasses.fields(Settings)}
               | {"RECONCILER_CONFIG", "RECONCILER_GATEWAY_URLS_FILE"})
OPERATOR_VARS = {operator_config.PREFIX + f.name.upper()
                 for f in dataclasses.fields(operator_config.OperatorConfig)}
scenarios = pytest.mark.parametrize("scenario", list(SCENARIOS))


# --- helm lint and template -------------------------------------------------------------

@scenarios
def test_helm_lint_strict_passes(helm: Path, scenario: str, tmp_path: Path) -> None:
    args = ["lint", str(CHART), "--strict", "--namespace", NAMESPACE]
    if SCENARIOS[scenario]:
        args += ["--values", str(values_file(SCENARIOS[scenario], tmp_path))]
    done = run_helm(helm, *args)
    assert "1 chart(s) linted, 0 chart(s) failed" in done.stdout
    assert "[WARNING]" not in done.stdout and "[ERROR]" not in done.stdout, done.stdout


@pytest.mark.parametrize(("values", "message"), [
    pytest.param({"mode": "dry-run"}, "/mode", id="unknown-mode"),
    pytest.param({"watchNamespace": ["a"]}, "watchNamespace", id="misspelt-key"),
    pytest.param({"watchNamespaces": ["Not_A_Namespace"]}, "/watchNamespaces/0",
                 id="bad-namespace"),
    pytest.param({"shards": [{"name": "North", "selector": "a=b"}]}, "/shards/0/name",
                 id="bad-shard-name"),
    pytest.param({"shards": [{"name": "a"}]}, "selector", id="shard-without-selector"),
    pytest.param({"shards": [{"name": "a", "selector": "x=1"}, {"name": "a", "selector": "x=2"}]},
                 'the name "a" is used twice', id="duplicate-shard"),
    pytest.param({"gatewayUrls": {"zap-0001": "10.0.0.1"}}, "/gatewayUrls/zap-0001",
                 id="url-without-scheme"),
    # No Gateway has it (spec.zap.serial is `zap-` and lowercase hex): its URL would never
    # be used, and the gateway reached at its spec.zap.url instead.
    pytest.param({"gatewayUrls": {"ZAP-0042": "http://10.8.0.42"}}, "ZAP-0042",
                 id="serial-no-gateway-has"),
    pytest.param({"serviceAccount": {"create": False}}, "serviceAccount.name is required",
                 id="no-service-account"),
    pytest.param({"credentials": {"mountAsFiles": True}},
                 "credentials.mountAsFiles mounts the Secret credentials.existingSecret names "
                 "as files: set credentials.existingSecret too", id="files-without-secret"),
    pytest.param({"passwordEnv": ["MQTT_PASSWORD", "RECONCILER_NOVACORE_TOKEN"]},
                 "passwordEnv: RECONCILER_NOVACORE_TOKEN may not be listed: names starting "
                 "with RECONCILER_, in any letter case, are the reconciler's own settings",
                 id="password-env-own-setting"),
    pytest.param({"passwordEnv": ["reconciler_enapter_token"]},
                 "passwordEnv: reconciler_enapter_token may not be listed",
                 id="password-env-own-setting-any-case"),
    pytest.param({"passwordEnv": ["mqtt-password"]}, "/passwordEnv/0",
                 id="password-env-not-a-name"),
    pytest.param({"image": {"repository": "r", "digest": "sha256:abc"}}, "/image/digest",
                 id="short-digest"),
    pytest.param({"image": {"repository": "r", "digest": "1.2.3"}}, "/image/digest",
                 id="tag-as-digest"),
    # Values Kubernetes keeps as text, which YAML reads as something else unless quoted:
    # rendered as they are, the API server refuses the Deployment, not naming the value.
    pytest.param({"podAnnotations": {"prometheus.io/scrape": True}},
                 "at '/podAnnotations/prometheus.io~1scrape': got boolean, want string",
                 id="annotation-not-text"),
    pytest.param({"podLabels": {"tier": 1}}, "at '/podLabels/tier': got number, want string",
                 id="label-not-text"),
    pytest.param({"nodeSelector": {"dedicated": True}},
                 "at '/nodeSelector/dedicated': got boolean, want string",
                 id="node-selector-not-text"),
    pytest.param({"serviceAccount": {"annotations": {"example.dev/id": 12}}},
                 "at '/serviceAccount/annotations/example.dev~1id': got number, want string",
                 id="service-account-annotation-not-text"),
    pytest.param({"extraEnv": [{"name": "PORT", "value": 8080}]},
                 "at '/extraEnv/0/value': got number, want string", id="env-value-not-text"),
    pytest.param({"extraEnv": [{"name": "PORT", "valu": "8080"}]}, "'valu' not allowed",
                 id="env-misspelt-key"),
    pytest.param({"imagePullSecrets": ["pull"]}, "at '/imagePullSecrets/0': got string",
                 id="pull-secret-not-a-reference"),
])
def test_invalid_values_are_refused(helm: Path, values: dict[str, Any], message: str) -> None:
    done = template(helm, values, check=False)
    assert done.returncode != 0, f"helm accepted {values}"
    assert message in done.stderr, done.stderr


def test_notes_warn_without_credentials(helm: Path, tmp_path: Path) -> None:
    install = ["install", RELEASE, str(CHART), "--namespace", NAMESPACE, "--dry-run=client"]
    without = run_helm(helm, *install).stdout
    assert "WARNING: credentials.existingSecret is not set" in without
    with_secret = run_helm(helm, *install, "--values",
                           str(values_file({"credentials": CREDENTIALS}, tmp_path))).stdout
    assert "NOTES:" in with_secret and "WARNING" not in with_secret


# --- every rendered object is valid ----------------------------------------------------

@scenarios
def test_every_rendered_object_is_schema_valid(rendered: Render, scenario: str) -> None:
    out = rendered(SCENARIOS[scenario])
    crds = CrdSet(out.of_kind("CustomResourceDefinition"))
    assert len(out.of_kind("CustomResourceDefinition")) == 6  # ours and kopf's two
    for document in out.documents:
        kind = document["kind"]
        where = f"{kind}/{document['metadata'].get('name')}"
        if (document["apiVersion"], kind) in crds:
            assert crds.validate(document) == [], where
        else:
            model_for(document["apiVersion"], kind)  # a built-in kind, or this raises
            assert validate_builtin(document) == [], where
        if kind != "CustomResourceDefinition":
            has_namespace = document["metadata"].get("namespace") is not None
            assert has_namespace == (kind in NAMESPACED), where
            labels = document["metadata"]["labels"]
            assert labels["app.kubernetes.io/instance"] == RELEASE, where
            assert labels["app.kubernetes.io/managed-by"] == "Helm", where


@scenarios
def test_object_names_are_unique(rendered: Render, scenario: str) -> None:
    keys = [(d["kind"], d["metadata"].get("namespace"), d["metadata"]["name"])
            for d in rendered(SCENARIOS[scenario]).documents]
    assert len(keys) == len(set(keys)), sorted(keys)


# --- the Deployments ----------------------------------------------------------------------

@scenarios
def test_one_deployment_per_shard(rendered: Render, scenario: str) -> None:
    values = SCENARIOS[scenario]
    out = rendered(values)
    expected = {f"{FULLNAME}{s['suffix']}": s for s in shards_of(values)}
    deployments = {d["metadata"]["name"]: d for d in out.of_kind("Deployment")}
    assert set(deployments) == set(expected)
    selectors = []
    for name, deployment in deployments.items():
        assert deployment["spec"]["replicas"] == expected[name]["replicas"]
        env = plain_env(deployment["spec"]["template"]["spec"]["containers"][0])
        shard = expected[name]["selector"]
        if shard:
            assert env["RECONCILER_OPERATOR_SHARD"] == shard, name
            assert operator_config.load(env).shard == shard
        else:
            assert "RECONCILER_OPERATOR_SHARD" not in env, name
        match = deployment["spec"]["selector"]["matchLabels"]
        assert match.items() <= deployment["spec"]["template"]["metadata"]["labels"].items()
        selectors.append(match)
    # No Deployment's selector matches another's pods.
    for i, one in enumerate(selectors):
        for other in selectors[i + 1:]:
            assert not one.items() <= other.items() and not other.items() <= one.items()


def test_each_shard_passes_its_selector_as_a_kopf_label_filter(rendered: Render) -> None:
    out = rendered(SCENARIOS["shards"])
    filters = {}
    for deployment, container in out.containers():
        config = operator_config.load(plain_env(container))
        filters[deployment["metadata"]["name"]] = config.label_filter()
    assert filters[f"{FULLNAME}-north"] == {"energy.reconciler.dev/shard": "north"}
    south = filters[f"{FULLNAME}-south"]
    assert south["energy.reconciler.dev/shard"] == "south"
    assert set(south) == {"energy.reconciler.dev/shard", "tier"}
    assert len(filters) == len(SHARDS)


@scenarios
def test_pods_run_locked_down(rendered: Render, scenario: str, dockerfile_uid: int) -> None:
    for deployment, container in rendered(SCENARIOS[scenario]).containers():
        pod = deployment["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["runAsUser"] == dockerfile_uid
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        security = container["securityContext"]
        assert security["runAsNonRoot"] is True
        assert security["readOnlyRootFilesystem"] is True
        assert security["allowPrivilegeEscalation"] is False
        assert security["capabilities"] == {"drop": ["ALL"]}
        assert "privileged" not in security and "add" not in security["capabilities"]
        assert pod["serviceAccountName"] == FULLNAME
        assert "hostNetwork" not in pod and "hostPID" not in pod


@scenarios
def test_writable_paths_are_emptydirs(rendered: Render, scenario: str) -> None:
    for deployment, container in rendered(SCENARIOS[scenario]).containers():
        volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
        mounts = {m["mountPath"]: volumes[m["name"]] for m in container["volumeMounts"]}
        state_dir = plain_env(container)["RECONCILER_STATE_DIR"]
        assert "emptyDir" in mounts[state_dir]
        assert "emptyDir" in mounts["/tmp"]
        assert load_settings(plain_env(container), check_files=False).state_dir == state_dir


@scenarios
def test_liveness_probe_hits_kopfs_health_endpoint(rendered: Render, scenario: str) -> None:
    for _, container in rendered(SCENARIOS[scenario]).containers():
        args = build_parser().parse_args(container["command"][1:] + container["args"])
        endpoint = urlsplit(args.liveness)
        probe = container["livenessProbe"]["httpGet"]
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        port = ports.get(probe["port"], probe["port"])
        assert (port, probe["path"]) == (8080, "/healthz")
        assert (endpoint.hostname, endpoint.port, endpoint.path) == ("0.0.0.0", port, probe["path"])
        assert container["resources"]["requests"]["cpu"]
        assert container["resources"]["requests"]["memory"]


@scenarios
def test_container_command_is_a_real_operator_invocation(rendered: Render, scenario: str) -> None:
    values = SCENARIOS[scenario]
    for _, container in rendered(values).containers():
        assert container["command"] == ["reconciler"]
        args = build_parser().parse_args(container["args"])
        assert args.run is operator_cmd.run
        if values.get("watchNamespaces"):
            assert args.namespace == values["watchNamespaces"]
            assert args.all_namespaces is False
        else:
            assert args.namespace == []
            assert args.all_namespaces is True
        assert args.verbose is bool(values.get("verbose"))


def test_a_digest_pins_the_image(rendered: Render) -> None:
    digest = "sha256:" + "0123456789abcdef" * 4
    image = {"repository": "registry.example/reconciler", "tag": "1.2.3", "digest": digest}
    out = rendered({"image": image})
    [(deployment, container)] = out.containers()
    # By digest alone: a tag beside it would be a second name the runtime ignores.
    assert container["image"] == f"registry.example/reconciler@{digest}"
    assert validate_builtin(deployment) == []
    [(_, default)] = rendered().containers()
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text(encoding="utf-8"))
    assert default["image"] == f"ghcr.io/energy-reconciler/reconciler:{chart['appVersion']}"


def test_operator_help_runs() -> None:
    script = Path(sys.executable).with_name("reconciler")
    for command in ([str(script)], [sys.executable, "-m", "reconciler"]):
        done = subprocess.run([*command, "operator", "--help"], capture_output=True, text=True,
                              timeout=60, check=False)
        assert done.returncode == 0, done.stderr
        for option in ("--all-namespaces", "--namespace", "--liveness", "--verbose"):
            assert option in done.stdout


# --- environment: what the code reads ----------------------------------------------------

@scenarios
def test_every_variable_is_one_the_code_reads(rendered: Render, scenario: str) -> None:
    extra = {e["name"] for e in SCENARIOS[scenario].get("extraEnv", [])}
    for _, container in rendered(SCENARIOS[scenario]).containers():
        names = set(env_of(container)) - extra - {"POD_ID"}
        unknown = {n for n in names if n not in ENGINE_VARS | OPERATOR_VARS}
        assert not unknown, f"variables no code reads: {unknown}"


@scenarios
def test_operator_settings_load_from_the_rendered_env(rendered: Render, scenario: str) -> None:
    values = SCENARIOS[scenario]
    for deployment, container in rendered(values).containers():
        env = plain_env(container)
        config = operator_config.load(env)
        assert config.mode == values.get("mode", "apply")
        assert config.interval == values.get("reconcileInterval", 300)
        assert config.retry_delay == values.get("retryDelay", 15)
        assert config.watch_failure_limit == values.get("watchFailureLimit", 300)
        assert config.namespaces == ()  # the namespaces go on the command line
        assert config.password_env == frozenset(values.get("passwordEnv", []))
        if not values.get("passwordEnv"):
            assert "RECONCILER_OPERATOR_PASSWORD_ENV" not in env
        if peering_on(values):
            assert config.peering == deployment["metadata"]["name"]
        else:
            assert config.peering == ""


def test_engine_settings_load_from_the_rendered_env(rendered: Render) -> None:
    # check_files=False: the CA bundle is a file of the pod (a mounted ConfigMap), not here.
    values = SCENARIOS["everything"]
    [(_, container)] = rendered(values).containers()
    settings = load_settings(plain_env(container), check_files=False)
    assert settings.novacore_url == values["endpoints"]["novacore"]
    assert settings.enapter_url == values["endpoints"]["enapter"]
    assert settings.flatpeak_url == values["endpoints"]["flatpeak"]
    assert dict(settings.gateway_urls) == values["gatewayUrls"]
    assert (settings.concurrency, settings.gateway_concurrency, settings.gateway_rate,
            settings.timeout, settings.retries) == (32, 2, 5.5, 20.0, 3)
    assert settings.ca_bundle == "/etc/reconciler/ca/bundle.pem"
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert settings.ca_bundle.startswith(mounts["ca-bundle"] + "/")


def test_defaults_leave_engine_defaults_alone(rendered: Render) -> None:
    [(_, container)] = rendered({}).containers()
    settings = load_settings(plain_env(container), check_files=False)
    defaults = Settings()
    assert (settings.novacore_url, settings.enapter_url, settings.flatpeak_url,
            settings.concurrency, settings.retries) == (
        defaults.novacore_url, defaults.enapter_url, defaults.flatpeak_url,
        defaults.concurrency, defaults.retries)


# --- credentials ------------------------------------------------------------------------

@scenarios
def test_credentials_come_only_from_the_secret(rendered: Render, scenario: str) -> None:
    values = SCENARIOS[scenario]
    secret = (values.get("credentials") or {}).get("existingSecret")
    as_files = bool(secret and values["credentials"].get("mountAsFiles"))
    for deployment, container in rendered(values).containers():
        env = env_of(container)
        files = credential_files(deployment, container)
        for name, entry in env.items():
            if name == "RECONCILER_OPERATOR_PASSWORD_ENV":
                continue  # names of variables, not a value
            if name in FILE_VARS:
                continue  # the path of a file of the Secret (`credential_files`)
            if any(word in name for word in ("TOKEN", "KEY", "IDENTITY", "ACCOUNT", "PASSWORD")):
                assert "value" not in entry, f"{name} is inline"
        credentials = {n: e for n, e in env.items() if n in CREDENTIAL_VARS}
        if not secret:
            assert credentials == {} and files == {}
            continue
        from_files = {FILE_VARS[name]: key for name, (_, key) in files.items()}
        assert set(credentials) | set(from_files) == set(CREDENTIAL_VARS)
        assert set(from_files) == (set(FILE_VARS.values()) if as_files else set())
        assert all(source == secret for source, _ in files.values())
        assert from_files == {n: CREDENTIAL_VARS[n] for n in from_files}
        for name, entry in credentials.items():
            ref = entry["valueFrom"]["secretKeyRef"]
            assert (ref["name"], ref["key"]) == (secret, CREDENTIAL_VARS[name])
            assert ref["optional"] is True  # a platform you do not use needs no key


def credential_files(deployment: dict[str, Any],
                     container: dict[str, Any]) -> dict[str, tuple[str, str]]:
    """Each RECONCILER_*_FILE variable of `container`, as (Secret, key) of the file it
    names; fails on a path that is not a key of a Secret mounted whole (kubelet updates
    the files of such a mount when the Secret changes, never one mounted by subPath)."""
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    found = {}
    for name, value in plain_env(container).items():
        if name not in FILE_VARS:
            continue
        directory, _, key = value.rpartition("/")
        mount = mounts[directory]
        assert mount.get("readOnly") is True and "subPath" not in mount, mount
        secret = volumes[mount["name"]]["secret"]
        assert "items" not in secret  # every key of the Secret, as it is now
        found[name] = (secret["secretName"], key)
    return found


def test_credentials_mounted_as_files_are_read_again_by_the_code(
        rendered: Render, tmp_path: Path) -> None:
    """The files the rendered pod's variables name, laid out as kubelet mounts the
    Secret: the settings read the tokens from them, and a token rotated in the Secret is
    read again (`Settings.renewed`, at every reconcile)."""
    values = {"credentials": {**CREDENTIALS, "mountAsFiles": True,
                              "keys": {"flatpeakApiKey": "", "flatpeakAccountId": ""}}}
    [(deployment, container)] = rendered(values).containers()
    files = credential_files(deployment, container)
    assert set(files) == {"RECONCILER_NOVACORE_TOKEN_FILE", "RECONCILER_ENAPTER_TOKEN_FILE"}
    env = plain_env(container)
    for name, (_, key) in files.items():
        (tmp_path / key).write_text(f"{key}-1\n")
        env[name] = str(tmp_path / key)  # where the mount is, here
    settings = load_settings(env)
    assert (settings.novacore_token, settings.enapter_token) == ("novacore-token-1",
                                                                 "enapter-token-1")
    (tmp_path / "novacore-token").write_text("novacore-token-2\n")
    assert settings.renewed().novacore_token == "novacore-token-2"
    # Left as variables: the ids, which are not rotated.
    refs = {n: e["valueFrom"]["secretKeyRef"]["key"] for n, e in env_of(container).items()
            if n in CREDENTIAL_VARS}
    assert refs == {"RECONCILER_NOVACORE_IDENTITY": "novacore-identity"}


def test_password_env_names_are_checked_as_the_operator_checks_them() -> None:
    """The values schema repeats the form of a name of `model.env_names`, for `helm install`
    to fail at once instead of the operator at start-up."""
    schema = json.loads((CHART / "values.schema.json").read_text(encoding="utf-8"))
    assert schema["properties"]["passwordEnv"]["items"]["pattern"] == env_names.NAME_PATTERN


def test_gateway_url_serials_are_checked_as_the_model_checks_a_gateway_serial() -> None:
    """The values schema repeats the model's form of a Zap serial: a key no Gateway can
    have fails `helm install`, instead of its URL being ignored."""
    schema = json.loads((CHART / "values.schema.json").read_text(encoding="utf-8"))
    names = schema["properties"]["gatewayUrls"]["propertyNames"]
    assert names["pattern"] == ZAP_SERIAL_PATTERN


def test_a_credential_key_can_be_left_out(rendered: Render) -> None:
    keys = {"flatpeakAccountId": "", "flatpeakApiKey": ""}
    values = {"credentials": {**CREDENTIALS, "keys": keys}}
    [(_, container)] = rendered(values).containers()
    env = env_of(container)
    assert "RECONCILER_FLATPEAK_API_KEY" not in env and "RECONCILER_FLATPEAK_ACCOUNT_ID" not in env
    assert env["RECONCILER_NOVACORE_TOKEN"]["valueFrom"]["secretKeyRef"]["key"] == "novacore-token"


@scenarios
def test_every_operator_shares_one_credential_key_from_a_secret(rendered: Render,
                                                                scenario: str) -> None:
    """The key of the password fingerprints in Device status: generated into a Secret the
    chart keeps (so an upgrade or a reinstall reuses it), the same for every Deployment."""
    render = rendered(SCENARIOS[scenario])
    secret = render.one("Secret")
    assert secret["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    key = base64.b64decode(secret["data"]["key"]).decode()
    assert len(key) >= 32 and key.isalnum()
    refs = {json.dumps(env_of(c)["RECONCILER_OPERATOR_CREDENTIAL_KEY"]["valueFrom"])
            for _, c in render.containers()}
    assert [json.loads(r) for r in refs] == [
        {"secretKeyRef": {"name": secret["metadata"]["name"], "key": "key"}}]


@pytest.mark.parametrize(("release", "name"), [
    ("reconciler", "reconciler-credential-key"),  # the README's `helm install reconciler`
    ("fleet", "fleet-reconciler-credential-key"),
])
def test_the_generated_credential_key_is_the_secret_the_docs_name(
        helm: Path, release: str, name: str) -> None:
    """The Secret named in the README and values.yaml, to back up or to look for, is the
    one the chart makes: named after the chart's fullname, which adds the chart's name to a
    release name that does not already hold it."""
    out = Rendered(run_helm(helm, "template", release, str(CHART), "--namespace",
                            NAMESPACE).stdout)
    assert out.one("Secret")["metadata"]["name"] == name
    for path in (REPO / "README.md", CHART / "values.yaml"):
        text = " ".join(path.read_text(encoding="utf-8").replace("#", " ").split())
        assert "<release>-credential-key" not in text, path
        assert "`<release>-reconciler-credential-key`" in text, path


def test_a_credential_key_of_ones_own_is_used_instead(rendered: Render) -> None:
    render = rendered({"credentialKey": {"existingSecret": "my-key", "key": "k"}})
    assert render.of_kind("Secret") == []
    [(_, container)] = render.containers()
    entry = env_of(container)["RECONCILER_OPERATOR_CREDENTIAL_KEY"]
    assert entry["valueFrom"]["secretKeyRef"] == {"name": "my-key", "key": "k"}


# --- peering ------------------------------------------------------------------------------

@scenarios
def test_peering_objects_match_the_operators(rendered: Render, scenario: str) -> None:
    values = SCENARIOS[scenario]
    out = rendered(values)
    names = {d["metadata"]["name"] for d in out.of_kind("Deployment")}
    cluster = {d["metadata"]["name"] for d in out.of_kind("ClusterKopfPeering")}
    namespaced = {(d["metadata"]["namespace"], d["metadata"]["name"])
                  for d in out.of_kind("KopfPeering")}
    # Never an old and a new pod at once, with peering too: an operator that stops drops its
    # peering record before its last writes land, and a new pod would take over meanwhile.
    for deployment in out.of_kind("Deployment"):
        assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    if not peering_on(values):
        assert cluster == set() and namespaced == set()
        return
    # One peering object per Deployment, so shards do not pause one another.
    if values.get("watchNamespaces"):
        assert cluster == set()
        assert namespaced == {(ns, n) for ns in values["watchNamespaces"] for n in names}
    else:
        assert namespaced == set()
        assert cluster == names
    for deployment in out.of_kind("Deployment"):
        env = env_of(deployment["spec"]["template"]["spec"]["containers"][0])
        assert env["POD_ID"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"

