"""The emulated API server moves an object's `resourceVersion` at every write, as a real
one does: kopf waits for the version its patch made before it runs handlers again, tests
whether the object changed meanwhile before a JSON patch (finalizers), and watches from
the version of its list (told of what was written and deleted since)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

import httpx
from harness import NAMESPACE, WAIT, Cluster, emulated_cluster
from kube_emulator import Emulator

DEVICE = {
    "apiVersion": "energy.reconciler.dev/v1alpha1",
    "kind": "Device",
    "metadata": {"name": "meter"},
    "spec": {"deviceType": "energy_meter"},
}


async def _version(cluster: Cluster) -> str:
    return str(((await cluster.get("Device", "meter")) or {})["metadata"]["resourceVersion"])


async def test_every_write_moves_the_resource_version() -> None:
    async with emulated_cluster() as cluster:
        await cluster.create(DEVICE)
        seen = [await _version(cluster)]
        await cluster.patch("Device", "meter", {"spec": {"deviceType": "battery"}})
        seen.append(await _version(cluster))
        status = await cluster.http.patch(
            f"{cluster._path('Device', 'meter')}/status",
            json={"status": {"observedGeneration": 1}},
            headers={"Content-Type": "application/merge-patch+json"},
        )
        status.raise_for_status()
        assert status.json()["metadata"]["resourceVersion"] == await _version(cluster)
        seen.append(await _version(cluster))
        await _json_patch(cluster, seen[-1], [{"op": "add", "path": "/metadata/finalizers",
                                                "value": ["test/finalizer"]}])
        seen.append(await _version(cluster))
        await cluster.delete("Device", "meter")
        marked = await cluster.get("Device", "meter") or {}
        assert marked["metadata"].get("deletionTimestamp")
        seen.append(await _version(cluster))
        assert len(set(seen)) == len(seen), seen


async def test_a_json_patch_testing_an_old_version_is_refused() -> None:
    async with emulated_cluster() as cluster:
        await cluster.create(DEVICE)
        old = await _version(cluster)
        await cluster.patch("Device", "meter", {"spec": {"deviceType": "battery"}})
        response = await _json_patch(
            cluster, old, [{"op": "add", "path": "/metadata/finalizers", "value": ["x"]}],
            check=False,
        )
        assert response.status_code == 422, response.text
        assert "finalizers" not in ((await cluster.get("Device", "meter")) or {})["metadata"]


async def test_a_merge_patch_naming_an_old_version_is_refused_with_a_conflict() -> None:
    """A real API server takes a merge patch's `metadata.resourceVersion` for a
    precondition: the operator's drift checks write their status so (`status_writes`)."""
    async with emulated_cluster() as cluster:
        await cluster.create(DEVICE)
        old = await _version(cluster)
        await cluster.patch("Device", "meter", {"spec": {"deviceType": "battery"}})
        status_path = f"{cluster._path('Device', 'meter')}/status"
        headers = {"Content-Type": "application/merge-patch+json"}
        stale = {"metadata": {"resourceVersion": old}, "status": {"observedGeneration": 1}}
        refused = await cluster.http.patch(status_path, json=stale, headers=headers)
        assert refused.status_code == 409, refused.text
        assert await cluster.status("Device", "meter") == {}
        fresh = {"metadata": {"resourceVersion": await _version(cluster)},
                 "status": {"observedGeneration": 1}}
        (await cluster.http.patch(status_path, json=fresh, headers=headers)).raise_for_status()
        assert await cluster.status("Device", "meter") == {"observedGeneration": 1}


async def test_a_delete_whose_preconditions_are_not_the_objects_is_refused() -> None:
    """A real API server answers 409 Conflict to a delete whose `preconditions` (uid,
    resourceVersion) are not the object's: the operator deletes its config Secrets only
    as it read them (`secrets.KubeSecrets._delete`)."""
    async with emulated_cluster() as cluster:
        await cluster.create_secret("conf", {"config.json": "{}"})
        path = f"/api/v1/namespaces/{NAMESPACE}/secrets/conf"
        read = (await cluster.secret("conf"))["metadata"]
        assert read.get("uid"), "given one at its create, as by an API server"
        await cluster.update_secret("conf", {"config.json": "{\"new\": 1}"})
        now = (await cluster.secret("conf"))["metadata"]
        assert now["uid"] == read["uid"], "the same object, written over"

        for stale in ({"uid": read["uid"], "resourceVersion": read["resourceVersion"]},
                      {"uid": "another-uid", "resourceVersion": now["resourceVersion"]}):
            refused = await cluster.http.request(
                "DELETE", path, json={"kind": "DeleteOptions", "apiVersion": "v1",
                                      "preconditions": stale})
            assert refused.status_code == 409, refused.text
            assert await cluster.secret("conf"), "kept"
        fresh = {"uid": now["uid"], "resourceVersion": now["resourceVersion"]}
        deleted = await cluster.http.request(
            "DELETE", path, json={"kind": "DeleteOptions", "apiVersion": "v1",
                                  "preconditions": fresh})
        deleted.raise_for_status()
        assert await cluster.secret("conf") == {}


async def _json_patch(
    cluster: Cluster, version: str, ops: list[dict[str, Any]], *, check: bool = True
) -> Any:
    """A JSON patch as kopf sends one: testing the version it last saw first."""
    test = {"op": "test", "path": "/metadata/resourceVersion", "value": version}
    response = await cluster.http.patch(
        cluster._path("Device", "meter"),
        json=[test, *ops],
        headers={"Content-Type": "application/json-patch+json"},
    )
    if check:
        response.raise_for_status()
    return response


async def test_a_watch_from_a_version_starts_with_what_was_written_since() -> None:
    async with emulated_cluster() as cluster:
        path = cluster._path("Device")
        await cluster.create(DEVICE)
        listed = (await cluster.http.get(path)).json()["metadata"]["resourceVersion"]
        assert listed == await _version(cluster)
        other = {**DEVICE, "metadata": {"name": "other"}}
        await cluster.create(other)
        names = []
        params = {"watch": "true", "resourceVersion": listed}
        async with cluster.http.stream("GET", path, params=params, timeout=WAIT) as stream:
            async for line in stream.aiter_lines():
                if line.strip():
                    names.append(json.loads(line)["object"]["metadata"]["name"])
                    break
        assert names == ["other"]


async def test_a_watch_from_a_version_starts_with_what_was_deleted_since() -> None:
    """kopf watches again from its last version every few seconds: an object deleted
    between two watches (its finalizer removed, or deleted with none) is reported by the
    next one, or kopf would keep it in its indexes for good."""
    async with emulated_cluster() as cluster:
        path = cluster._path("Device")
        await cluster.create(DEVICE)
        await cluster.create({**DEVICE, "metadata": {"name": "other"}})
        await _json_patch(cluster, await _version(cluster), [
            {"op": "add", "path": "/metadata/finalizers", "value": ["test/finalizer"]}])
        await cluster.delete("Device", "meter")
        listed = (await cluster.http.get(path)).json()["metadata"]["resourceVersion"]
        await _json_patch(cluster, await _version(cluster), [
            {"op": "remove", "path": "/metadata/finalizers"}])
        await cluster.delete("Device", "other")
        await cluster.create({**DEVICE, "metadata": {"name": "third"}})
        events = []
        params = {"watch": "true", "resourceVersion": listed}
        with contextlib.suppress(httpx.ReadTimeout):  # nothing more comes: the test says what
            async with cluster.http.stream("GET", path, params=params, timeout=WAIT) as stream:
                async for line in stream.aiter_lines():
                    if line.strip():
                        event = json.loads(line)
                        events.append((event["type"], event["object"]["metadata"]["name"]))
                    if len(events) == 3:
                        break
        assert events == [("DELETED", "meter"), ("DELETED", "other"), ("ADDED", "third")]
        assert await cluster.get("Device", "meter") is None


async def _watched(cluster: Cluster, params: dict[str, str]) -> list[dict[str, Any]]:
    """The events of a watch of Devices with `params`, until the server ends it (a watch
    the server does not end fails the test with the client's read timeout)."""
    events = []
    watch = {"watch": "true", **params}
    async with cluster.http.stream("GET", cluster._path("Device"), params=watch,
                                   timeout=WAIT) as stream:
        async for line in stream.aiter_lines():
            if line.strip():
                events.append(json.loads(line))
    return events


async def test_a_watch_asking_for_a_timeout_is_ended_by_the_server_then() -> None:
    """kopf asks its watches for `timeoutSeconds` (the operator tests: 1 s), which an API
    server honours before kopf's own client timeout (2 s later) gives up on the watch. A
    watch given up on by its client is one the emulator went on serving: an error a test
    ended it with (`end_watches`) was then counted, though nobody read it."""
    async with emulated_cluster() as cluster:
        await cluster.create(DEVICE)
        listed = (await cluster.http.get(cluster._path("Device"))).json()
        version = listed["metadata"]["resourceVersion"]
        assert await _watched(cluster, {"resourceVersion": version, "timeoutSeconds": "1"}) == []


async def test_a_watch_a_test_ends_is_told_the_error_then_ended() -> None:
    """A watch `end_watches` counts is told the error, then ended (one whose timeout comes
    meanwhile tells it first)."""
    async with emulated_cluster() as cluster:
        emulator = cluster.emulator
        assert isinstance(emulator, Emulator)
        error = {"type": "ERROR", "object": {"kind": "Status", "code": 500}}
        watching = asyncio.ensure_future(_watched(cluster, {"timeoutSeconds": "10"}))

        async def ended() -> int:
            return await emulator.end_watches("devices", error)

        assert await cluster.wait_for(ended, what="an open watch of devices") == 1
        assert await watching == [error]


async def test_a_watch_is_told_apart_from_one_started_before_the_last_list() -> None:
    """`watching_since_listed`: a watch open that started after the last list of its
    resource, not one that started before it, nor one being ended, nor one of another
    resource."""
    async with emulated_cluster() as cluster:
        emulator = cluster.emulator
        assert isinstance(emulator, Emulator)
        await cluster.http.get(cluster._path("Device"))
        assert not emulator.watching_since_listed("devices")

        async def opened() -> bool:
            return emulator.watching_since_listed("devices")

        watching = asyncio.ensure_future(_watched(cluster, {"timeoutSeconds": "10"}))
        await cluster.wait_for(opened, what="the watch of devices open")
        assert not emulator.watching_since_listed("sites")
        await cluster.http.get(cluster._path("Device"))
        assert not emulator.watching_since_listed("devices")
        watching.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watching

        error = {"type": "ERROR", "object": {"kind": "Status", "code": 500}}
        watching = asyncio.ensure_future(_watched(cluster, {"timeoutSeconds": "10"}))
        await cluster.wait_for(opened, what="a watch of devices open after the list")
        assert await emulator.end_watches("devices", error) == 1
        # Told apart at once, before the error reached its client.
        assert not emulator.watching_since_listed("devices")
        assert await watching == [error]
