"""What an observation could not read, for the messages that must say so: each source it
recorded as `Unreachable` (an organisation's sites or gateways, a site's devices, a Zap,
another platform's lists) and each device serial it could not read, named with where it
was called and why, in a stable order; and the longest wait a server that could not be
read asked for (Retry-After)."""

from __future__ import annotations

import dataclasses
from typing import Any

from reconciler.engine.config import Settings
from reconciler.plan.observed import Observed, Unreachable


def unread_sources(observed: Observed, settings: Settings) -> list[str]:
    """One line per source `observed` could not read: what, where and why."""
    found: list[str] = []
    novacore = f"Novacore ({settings.novacore_url})"
    for what, table in (
        ("sites of organisation", observed.novacore_sites),
        ("gateways of organisation", observed.novacore_gateways),
        ("devices of site", observed.novacore_devices),
    ):
        for key, value in sorted(table.items()):
            if isinstance(value, Unreachable):
                found.append(f"{novacore}, {what} {key}: {value.reason}")
    for gateway, state in sorted(observed.zaps.items()):
        if isinstance(state, Unreachable):
            # The URL called: RECONCILER_GATEWAY_URLS may override the one declared.
            where = f" ({state.url})" if state.url else ""
            found.append(f"gateway {gateway}{where}: {state.reason}")
    for device, reading in sorted(observed.identities.items()):
        if reading.error is not None:
            found.append(f"serial of device {device}: {reading.error}")
    for platform, state in sorted(observed.extra.items()):
        url = getattr(settings, f"{platform}_url", "")
        name = f"{platform.capitalize()} ({url})" if url else platform.capitalize()
        found += [f"{name}, {what}: {reason}" for what, reason in _unreachable_in(state)]
    return found


def _unreachable_in(state: Any) -> list[tuple[str, str]]:
    """(what, why) of each `Unreachable` field of another platform's observed state (a
    dataclass such as `plan.enapter_observed.EnapterState`), or of each entry of a dict field: the
    field's name says what ("sites"; "devices of KEY")."""
    if not dataclasses.is_dataclass(state) or isinstance(state, type):
        return []
    found: list[tuple[str, str]] = []
    for field in dataclasses.fields(state):
        value = getattr(state, field.name)
        if isinstance(value, Unreachable):
            found.append((field.name, value.reason))
        elif isinstance(value, dict):
            found += [
                (f"{field.name} of {key}", entry.reason)
                for key, entry in sorted(value.items())
                if isinstance(entry, Unreachable)
            ]
    return found


def asked_to_wait(observed: Observed) -> float | None:
    """The longest Retry-After, in seconds, of the sources `observed` could not read
    because their server asked to be called again later than a run waits; None if none."""
    found: list[Unreachable] = [
        value
        for table in (observed.novacore_sites, observed.novacore_gateways,
                      observed.novacore_devices, observed.zaps)
        for value in table.values()
        if isinstance(value, Unreachable)
    ]
    for state in observed.extra.values():
        if dataclasses.is_dataclass(state) and not isinstance(state, type):
            for field in dataclasses.fields(state):
                value = getattr(state, field.name)
                entries = value.values() if isinstance(value, dict) else [value]
                found += [e for e in entries if isinstance(e, Unreachable)]
    waits = [u.retry_after for u in found if u.retry_after is not None]
    return max(waits) if waits else None
