"""Records of the actual state, as providers report it after normalising API payloads.

The planner reads only these; it never sees an HTTP response. Everything is keyed by
natural keys (gateway serial, hardware id / Zap `sn`, names), so no local state file is
needed to find remote objects. `Unreachable` marks a source that could not be read: the
planner then defers instead of guessing; `NoAccess`, an organisation the token may not
read, and `NotTheApi`, a cloud URL that is not its API's: the planner blocks what they hold.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class Unreachable:
    """A source that could not be observed, and why; `url` is the address called, where
    known (for a gateway it may be an override of the declared one)."""

    reason: str
    url: str | None = None
    # Seconds the server asked not to be called for (Retry-After), when longer than a run
    # waits: the watch agent's next run waits for them, a day at most.
    retry_after: float | None = None


@dataclass(frozen=True, slots=True)
class NoAccess(Unreachable):
    """A Novacore organisation the token cannot read (403, or 404: not found, or hidden
    from it). Reading again does not help, as it does for an unreachable source: the site
    is blocked until its `orgId` or the token's access changes. Treated as unreachable
    wherever no more is said. `url_setting`: the setting of a Novacore URL with a path,
    when the answer was a 404 (the path may be what was not found)."""

    url_setting: str = ""


@dataclass(frozen=True, slots=True)
class NotTheApi(Unreachable):
    """A listing the API has for every token (Enapter's sites) answered 404: the URL set
    in `url_setting` is not the API's base URL (a path it does not have, a typo). Reading
    again gives the same answer, so what depends on it is blocked, not deferred: a plan
    that defers exits 0, and a configuration error must not pass a CI gate."""

    url_setting: str = ""


@dataclass(frozen=True, slots=True)
class ZapDevice:
    """A device configured on a Zap (one entry of GET /api/devices)."""

    sn: str
    connection_type: str
    profile: str | None
    device_type: str | None
    # Connection settings the Zap reports, in the Zap's own field names (ip, port, ...).
    settings: dict[str, Any] = field(default_factory=dict)
    # Local DER type (pv, battery, meter, v2x_charger) -> publishing enabled.
    ders: dict[str, bool] = field(default_factory=dict)
    connected: bool = True


@dataclass(frozen=True, slots=True)
class ZapState:
    """What one Zap reports about itself and its devices."""

    devices: dict[str, ZapDevice] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class NovacoreDer:
    id: str
    name: str
    type: str


@dataclass(frozen=True, slots=True)
class NovacoreDevice:
    id: str
    name: str
    device_type: str
    hardware_id: str
    state: str = "active"
    gateway_serial: str | None = None
    manufacturer: str | None = None
    model: str | None = None
    ders: tuple[NovacoreDer, ...] = ()
    # Of manufacturer and model, those Novacore reported empty (null): unlike a field it
    # leaves out, one reported empty is known to differ from a declared value.
    unset: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class NovacoreSite:
    id: str
    org_id: str
    name: str


@dataclass(frozen=True, slots=True)
class IdentityReading:
    """A device's serial as read over Modbus (directly or through its gateway)."""

    serial: str | None
    error: str | None = None


@dataclass
class Observed:
    """The whole observed state of a fleet. Missing keys mean "not observed" only where a
    matching `Unreachable` entry says so; otherwise they mean "does not exist"."""

    # org id -> sites of that org (GET /sites?org_id=), or Unreachable.
    novacore_sites: dict[str, list[NovacoreSite] | Unreachable] = field(default_factory=dict)
    # org id -> serials of the gateways that org owns (GET /gateways?org_id=), or Unreachable.
    novacore_gateways: dict[str, set[str] | Unreachable] = field(default_factory=dict)
    # Novacore site id -> devices of that site (GET /sites/{id}/devices), or Unreachable.
    novacore_devices: dict[str, list[NovacoreDevice] | Unreachable] = field(default_factory=dict)
    # Gateway resource name -> Zap state (GET /api/devices), or Unreachable.
    zaps: dict[str, ZapState | Unreachable] = field(default_factory=dict)
    # Device resource name -> serial read before provisioning (only devices that need it).
    identities: dict[str, IdentityReading] = field(default_factory=dict)
    # Device resource name -> why its MQTT password cannot be had (never the value).
    missing_secrets: dict[str, str] = field(default_factory=dict)
    # Device resource name -> which of its secrets changed since it was last sent to the
    # device, e.g. "MQTT password (from environment variable X)" (never the value).
    changed_secrets: dict[str, str] = field(default_factory=dict)
    # Other platforms add their own sections (see plan.platforms); keyed by platform name.
    extra: dict[str, Any] = field(default_factory=dict)
