"""The chart's RBAC is enough for the real operator: run `reconciler operator` with the
arguments and environment the chart renders, against kmock's Kubernetes emulator and the
platform simulators, and check that every API request it makes is one the chart's roles
allow (and that the requests covered what the roles are for).

kmock 0.8 cannot parse `GET /api/v1/namespaces`, which kopf sends in namespaced mode, so
this runs the cluster-wide rendering with peering on; the namespaced roles grant the same
verbs on the same resources (test_chart_rbac.py checks that statically).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import signal
import socket
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx
import kmock
import pytest
from chart_rbac import allowed, grants
from chart_render import SCENARIOS, Rendered, plain_env
from fleet_yaml import der, ferroamp_battery, novacore_site, stream, zap_gateway
from kmock._internal import apps
from kube_emulator import Emulator, register_resources

from reconciler.model.base import API_VERSION
from reconciler.model.schema import CRD_NAMES
from reconciler.sim.fleet import SimFleet
from reconciler.sources.loader import load_texts

NAMESPACE = "fleet"
SECRET = "mqtt-passw0rd-for-the-test"
FLEET = stream(
    novacore_site(),
    zap_gateway(),
    ferroamp_battery(extra="deletionPolicy: Release"),
    der("home-battery-meter", "home-battery", "battery-meter", "meter", "publish: false"),
)
TEST_CLIENT = "chart-rbac-test"  # User-Agent of this test's own requests, left out
VERBS = {"GET": "get", "POST": "create", "PATCH": "patch", "PUT": "update", "DELETE": "delete"}


def _seed(emulator: kmock.KubernetesEmulator, out: Rendered) -> None:
    emulator.objects["v1/namespaces", None, NAMESPACE] = {
        "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}}
    for peering in out.of_kind("ClusterKopfPeering"):  # what the chart creates
        key = ("kopf.dev/v1/clusterkopfpeerings", None, peering["metadata"]["name"])
        emulator.objects[key] = peering
    emulator.objects["v1/secrets", NAMESPACE, "ferroamp-mqtt"] = {
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "ferroamp-mqtt", "namespace": NAMESPACE},
        "data": {"password": base64.b64encode(SECRET.encode()).decode()}}
    result = load_texts([("fleet.yaml", FLEET)])
    assert result.ok, [str(d) for d in result.diagnostics]
    for resource in result.resources:
        document = resource.model_dump(mode="json", by_alias=True, exclude_none=True)
        document["metadata"].update(namespace=NAMESPACE, uid=str(uuid.uuid4()), generation=1,
                                    resourceVersion="1", creationTimestamp="2026-01-01T00:00:00Z")
        plural = CRD_NAMES[document["kind"]]["plural"]
        emulator.objects[f"{API_VERSION}/{plural}", NAMESPACE, document["metadata"]["name"]] = (
            document)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _kubeconfig(path: Path, server: str) -> Path:
    path.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "test",
        "clusters": [{"name": "test", "cluster": {"server": server}}],
        "users": [{"name": "test", "user": {"token": "test-token"}}],
        "contexts": [{"name": "test", "context": {"cluster": "test", "user": "test"}}],
    }))
    return path


def _requests(emulator: Emulator) -> list[tuple[str | None, str, str, str]]:
    """(namespace, apiGroup, resource[/subresource], verb) of every API request so far."""
    seen = []
    for request in list(emulator.taken):
        if request.resource is None or request.resource.plural is None:
            continue  # discovery (/api, /apis/<group>/<version>): open to every account
        if request.headers.get("User-Agent") == TEST_CLIENT:
            continue
        resource = request.resource.plural
        if request.subresource:
            resource += f"/{request.subresource}"
        verb = VERBS[request.method.value]
        if verb == "get" and request.name is None:
            verb = "watch" if request.params.get("watch") == "true" else "list"
        seen.append((request.namespace, request.resource.group or "", resource, verb))
    return seen


@contextlib.asynccontextmanager
async def _cluster(out: Rendered) -> AsyncIterator[Emulator]:
    async with Emulator() as emulator, apps.Server(emulator):
        register_resources(emulator)
        _seed(emulator, out)
        yield emulator


@contextlib.asynccontextmanager
async def _operator(argv: list[str], env: dict[str, str],
                    log: Path) -> AsyncIterator[asyncio.subprocess.Process]:
    with log.open("w") as sink:
        process = await asyncio.create_subprocess_exec(*argv, env=env, stdout=sink,
                                                       stderr=asyncio.subprocess.STDOUT)
        try:
            yield process
        finally:
            if process.returncode is None:
                process.send_signal(signal.SIGTERM)  # kopf stops gracefully on SIGTERM
                try:
                    await asyncio.wait_for(process.wait(), 15)
                except TimeoutError:
                    process.kill()
                    await process.wait()


def _tail(log: Path) -> str:
    return log.read_text()[-4000:]


async def _wait(predicate: Callable[[], bool], seconds: float, what: str, log: Path) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {seconds}s waiting for {what}; operator log:\n"
                                 + _tail(log))
        await asyncio.sleep(0.1)


def _base_env(tmp_path: Path, server: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RECONCILER_")}
    env["KUBECONFIG"] = str(_kubeconfig(tmp_path / "kubeconfig", server))
    return env


@pytest.fixture
def peering_render(rendered: Callable[..., Rendered]) -> Rendered:
    return rendered(SCENARIOS["peering"])


async def test_every_request_of_the_operator_is_allowed_by_the_chart(
        peering_render: Rendered, tmp_path: Path) -> None:
    out = peering_render
    granted = grants(out)
    [(deployment, container)] = out.containers()
    port = _free_port()
    args = [a if not a.startswith("--liveness=") else f"--liveness=http://127.0.0.1:{port}/healthz"
            for a in container["args"]]
    assert args != container["args"], "the chart passes --liveness"
    sims = SimFleet()
    sims.seed_fleet(load_texts([("fleet.yaml", FLEET)]).fleet())
    log = tmp_path / "operator.log"
    async with _cluster(out) as emulator:
        await sims.start()
        try:
            env = _base_env(tmp_path, str(emulator.url)) | plain_env(container) | sims.env()
            env |= {"RECONCILER_STATE_DIR": str(tmp_path / "state"), "POD_ID": "rec-reconciler-0"}
            async with _operator([sys.executable, "-m", "reconciler", *args], env, log) as process:
                def did(group: str, resource: str, verb: str) -> bool:
                    return any(r[1:] == (group, resource, verb) for r in _requests(emulator))

                await _wait(lambda: did("", "secrets", "get") and did("", "events", "create")
                            and did("energy.reconciler.dev", "devices/status", "patch"),
                            30, "the operator to read the Secret, patch status, post Events", log)
                client = httpx.AsyncClient(timeout=5, headers={"User-Agent": TEST_CLIENT})
                async with client:
                    health = await client.get(f"http://127.0.0.1:{port}/healthz")
                    assert health.status_code == 200, health.text
                    url = (f"{str(emulator.url).rstrip('/')}/apis/{API_VERSION}"
                           f"/namespaces/{NAMESPACE}/devices/home-battery")
                    deleted = await client.delete(url)
                    assert deleted.status_code == 200, deleted.text
                    deadline = time.monotonic() + 30
                    while (await client.get(url)).status_code != 404:
                        assert time.monotonic() < deadline, (
                            "the finalizer did not release the deleted Device:\n"
                            + _tail(log))
                        await asyncio.sleep(0.2)
                assert process.returncode is None, _tail(log)
        finally:
            await sims.stop()
        requests = _requests(emulator)
    assert SECRET not in log.read_text()
    denied = sorted({r for r in requests if not allowed(granted, *r)})
    assert denied == [], f"the chart's RBAC would refuse: {denied}"
    # The run used every granted verb but `get`: kopf lists and watches instead of getting
    # our objects (get adds nothing that list does not disclose), and the Secret read was
    # awaited above.
    used = {(g, res, v) for _, g, res, v in requests}
    unused = {(g, res, v) for _, g, res, v in granted
              if (g, res, v) not in used and v != "get"}
    assert unused == set(), f"granted but never used by the operator: {sorted(unused)}"
    assert deployment["spec"]["replicas"] == 2


async def test_cli_operator_authenticates(peering_render: Rendered, tmp_path: Path) -> None:
    [(_, container)] = peering_render.containers()
    args = [a for a in container["args"] if not a.startswith("--liveness")]
    log = tmp_path / "operator.log"
    async with _cluster(peering_render) as emulator:
        env = _base_env(tmp_path, str(emulator.url)) | plain_env(container)
        env |= {"RECONCILER_STATE_DIR": str(tmp_path / "state"), "POD_ID": "rec-reconciler-0"}
        async with _operator([sys.executable, "-m", "reconciler", *args], env, log):
            def listed_or_failed() -> bool:
                return (any(r[1:] == ("energy.reconciler.dev", "sites", "list")
                            for r in _requests(emulator))
                        or "Ran out of valid credentials" in _tail(log))

            await _wait(listed_or_failed, 20, "the operator to list Sites or fail to log in", log)
        sites = ("energy.reconciler.dev", "sites", "list")
        assert any(r[1:] == sites for r in _requests(emulator)), _tail(log)
