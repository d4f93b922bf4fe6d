"""A handler that waits is run again by kopf every few seconds: an update handler waiting
for its object's lock, held by another reconcile of the object, and a Device waiting for a
Gateway not declared. Each time the operator's log says at INFO what it waits for, with no
ERROR line, posted as no Event, while a handler that fails for good still logs at ERROR.
A finalizer that waited its whole lock wait for a reconcile of its object says so at
WARNING, in the operator's words: not kopf's ERROR line."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Any

import pytest
from harness import NAMESPACE, operator
from objects import HOME, declare

from reconciler.operator import handlers
from reconciler.operator.owner_locks import owner_lock

WAITING = "waiting for another reconcile of Device 'home-inverter' to end its writes"


def _about(records: list[logging.LogRecord], name: str) -> list[logging.LogRecord]:
    """kopf's lines of object `name` (its object logger's records name the object)."""
    return [r for r in records if (getattr(r, "k8s_ref", None) or {}).get("name") == name]


async def _said(caplog: pytest.LogCaptureFixture, message: str) -> bool:
    """Whether kopf said `message` of home-inverter."""
    return any(r.getMessage() == message for r in _about(caplog.records, "home-inverter"))


async def test_a_handler_waiting_for_its_objects_lock_says_so_at_info(
    tmp_path: Path, monkeypatch: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    async with operator(HOME, tmp_path, monkeypatch) as (cluster, _):
        docs = await declare(cluster)
        await cluster.wait_for(lambda: _said(caplog, "Handler 'create-devices' succeeded."),
                               what="home-inverter's create handler done")
        before = len(caplog.records)

        async def waited() -> bool:
            lines = _about(caplog.records[before:], "home-inverter")
            return len([r for r in lines if WAITING in r.getMessage()]) >= 2

        # A drift check writing, as far as the update handler can tell.
        async with owner_lock(NAMESPACE, "Device", "home-inverter"):
            await cluster.patch("Device", "home-inverter", {"spec": {"displayName": "PV"}})
            await cluster.wait_for(waited, what="the update handler run again twice")
        await cluster.wait_for(lambda: _said(caplog, "Handler 'update-devices' succeeded."),
                               what="home-inverter's update handler done")
        # A handler that fails for good: an unknown device type.
        battery = next(d for d in docs if d["metadata"]["name"] == "home-battery")
        toaster = json.loads(json.dumps(battery))
        toaster["metadata"]["name"] = "toaster"
        toaster["spec"]["deviceType"] = "toaster"
        await cluster.create(toaster)

        async def failed() -> bool:
            return any(r.levelno == logging.ERROR
                       and "Handler 'create-devices' failed permanently" in r.getMessage()
                       for r in _about(caplog.records, "toaster"))

        await cluster.wait_for(failed, what="toaster's create handler failed")
    lines = _about(caplog.records[before:], "home-inverter")
    waits = [r for r in lines if WAITING in r.getMessage()]
    assert waits, [r.getMessage() for r in lines]
    assert {(r.levelname, r.getMessage()) for r in waits} == {
        ("INFO", f"Handler 'update-devices' is {WAITING} (it is run again at once)")
    }
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert [m for m in errors if "waiting for another reconcile" in m] == []
    # Posted as no Event, should kopf be set to post its lines as Events (it is not:
    # `settings.posting.loggers`).
    assert all(getattr(r, "k8s_skip", False) for r in waits)


async def test_an_object_waiting_for_another_says_so_at_info(
    tmp_path: Path, monkeypatch: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    async with operator(HOME, tmp_path, monkeypatch) as (cluster, _):
        docs = await declare(cluster)
        battery = next(d for d in docs if d["metadata"]["name"] == "home-battery")
        stray = json.loads(json.dumps(battery))
        stray["metadata"]["name"] = "stray-battery"
        stray["spec"]["gatewayRef"] = "nowhere-zap"
        stray["spec"]["hardwareId"] = "FERRO-0404"
        await cluster.create(stray)

        def waits() -> list[logging.LogRecord]:
            return [r for r in _about(caplog.records, "stray-battery")
                    if "Gateway 'nowhere-zap'" in r.getMessage()]

        async def retried() -> bool:
            return len(waits()) >= 2

        await cluster.wait_for(retried, what="stray-battery's handler run again")
        # The retries' lines, taken before the operator stops: a run during the stop says
        # it waits for the next operator instead (`wait_lines.stopping_message`).
        lines = waits()
    assert {r.levelname for r in lines} == {"INFO"}, [(r.levelname, r.getMessage()) for r in lines]
    said = re.compile(r"(Handler 'create-devices'|Timer 'drift-devices') is waiting: Gateway "
                      r"'nowhere-zap' is not declared .* \(it is run again later\)")
    assert all(said.fullmatch(r.getMessage()) for r in lines), [r.getMessage() for r in lines]
    assert all(getattr(r, "k8s_skip", False) for r in lines)
    errors = [r.getMessage() for r in _about(caplog.records, "stray-battery")
              if r.levelno >= logging.ERROR]
    assert errors == []
    # Nor any other object's wait (the Devices waiting for their Gateway's claim, if they
    # were reconciled before it).
    assert [r.getMessage() for r in caplog.records
            if r.levelno >= logging.ERROR and "failed temporarily: waiting" in r.getMessage()] == []


async def test_a_finalizer_that_waited_its_whole_lock_wait_says_so_at_warning(
    tmp_path: Path, monkeypatch: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    # The wait shortened from its minute: what is said at its end is the test's.
    monkeypatch.setattr(handlers, "LOCK_WAIT", 0.5)
    async with operator(HOME, tmp_path, monkeypatch) as (cluster, _):
        await declare(cluster)
        await cluster.wait_condition("Device", "home-inverter", "Ready", timeout=60)
        before = len(caplog.records)

        def waits() -> list[logging.LogRecord]:
            return [r for r in _about(caplog.records[before:], "home-inverter")
                    if "for a reconcile of this object" in r.getMessage()]

        async def waited() -> bool:
            return bool(waits())

        # A reconcile writing, as far as the finalizer can tell.
        async with owner_lock(NAMESPACE, "Device", "home-inverter"):
            await cluster.delete("Device", "home-inverter")
            await cluster.wait_for(waited, what="the finalizer's wait said")
        await cluster.wait_gone("Device", "home-inverter")
        lines = waits()
    assert {r.levelname for r in lines} == {"WARNING"}, [(r.levelname, r.getMessage())
                                                         for r in lines]
    said = re.compile(r"Handler '[^']*' waited 0.5 s for a reconcile of this object to end "
                      r"its writes: the object is kept, and the finalizer tried again in a "
                      r"moment \(.*may be stuck\)")
    assert all(said.fullmatch(r.getMessage()) for r in lines), [r.getMessage() for r in lines]
    errors = [r.getMessage() for r in _about(caplog.records[before:], "home-inverter")
              if r.levelno >= logging.ERROR]
    assert errors == []
