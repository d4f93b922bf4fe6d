"""A `Fleet` is a validated set of resources: the whole desired state, indexed by kind and
name, with stand-alone DER documents merged into their devices.

`check_fleet` holds every rule that spans more than one field or more than one document.
It returns `Problem`s that name the resource and the field path, so the loader can point at
the file and line; it never raises for user errors. The few rules that read which Devices
hold what they declare (a Zap endpoint, a configOutput) run apart from the others too
(`rules_without_holders`, `holder_rules`, `in_rule_order`): a caller whose holders changed,
and nothing else, runs only those again. A caller that checked an earlier fleet of nearly
the same objects may pass what the rules found there: a Device's own rules that would read
the very objects they read then are not run again, nor is the endpoint it takes on its Zap
found again, nor are its inline DERs checked again (`DeviceChecked`).
"""

from __future__ import annotations

import functools
import posixpath
from collections import defaultdict
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TypeVar

from reconciler.model import zap_endpoints
from reconciler.model.base import Resource
from reconciler.model.declared import declared_paths
from reconciler.model.der import DER, MAX_DERS_PER_DEVICE, DerFields
from reconciler.model.device import Device, EnapterKind
from reconciler.model.gateway import Gateway
from reconciler.model.kinds import KINDS
from reconciler.model.profiles import PROFILES, profiles_for
from reconciler.model.site import Site
from reconciler.model.vocab import allowed_der_types
from reconciler.name_list import closest, listed
from reconciler.printable import echo
from reconciler.state_files import STATE_FILES, state_file_in

Path = tuple[str | int, ...]
DANGLING = "dangling_ref"
T = TypeVar("T")
# A Device of a Zap, the Gateway's name and the connection endpoint it takes there.
ZapPlace = tuple[Device, str, zap_endpoints.Endpoint]
# The Gateway's name and the endpoint a Device takes on its Zap (`zap_spot`).
ZapSpot = tuple[str, zap_endpoints.Endpoint]


@dataclass(frozen=True)
class Problem:
    """A rule violation: which resource, which field, what is wrong and what would be valid."""

    kind: str
    name: str
    path: Path
    message: str
    index: int = 0  # which declaration, when a name is declared twice
    # "dangling_ref" when the problem is a reference to an undeclared resource: the operator
    # waits for it to appear instead of failing.
    code: str = ""
    # (kind, name) a dangling reference names.
    refers_to: tuple[str, str] | None = None
    # (kind, name, field path) of the other declaration a clash is with: the loader says
    # where it is, so that both documents can be found (the message names it already).
    clashes_with: tuple[str, str, Path] | None = None


@dataclass
class _Children:
    """Who points at whom, built once per fleet: the planner asks for the gateways of every
    site and the devices of every gateway, which was a scan of the fleet per question."""

    size: tuple[int, int, int, int]
    gateways_by_site: dict[str, list[Gateway]]
    devices_by_gateway: dict[str, list[Device]]
    ders_by_device: dict[str, list[DER]]
    # The hardware ids declared behind each gateway: what the observation asks of every
    # site's gateways, without going through their Devices again (`plan.moves`).
    hardware_ids_by_gateway: dict[str, frozenset[str]]

    @classmethod
    def of(cls, fleet: Fleet) -> _Children:
        gateways_by_site: dict[str, list[Gateway]] = defaultdict(list)
        devices_by_gateway: dict[str, list[Device]] = defaultdict(list)
        ders_by_device: dict[str, list[DER]] = defaultdict(list)
        hardware_ids: dict[str, set[str]] = defaultdict(set)
        for gateway in fleet.gateways.values():
            gateways_by_site[gateway.spec.site_ref].append(gateway)
        for device in fleet.devices.values():
            spec = device.spec
            if spec.gateway_ref:
                devices_by_gateway[spec.gateway_ref].append(device)
                if spec.hardware_id:
                    hardware_ids[spec.gateway_ref].add(spec.hardware_id)
        for der in fleet.ders.values():
            ders_by_device[der.spec.device_ref].append(der)
        return cls(
            fleet.size(), gateways_by_site, devices_by_gateway, ders_by_device,
            {name: frozenset(ids) for name, ids in hardware_ids.items()},
        )


@dataclass(frozen=True)
class _ZapChecks:
    """The Devices whose declared secrets and serials each plan checks before it plans
    (`Fleet.mqtt_password_devices`, `Fleet.serial_checked_of`): few in most fleets."""

    passwords: tuple[Device, ...]
    serials_by_gateway: dict[str, tuple[Device, ...]]

    @classmethod
    def of(cls, fleet: Fleet) -> _ZapChecks:
        passwords: list[Device] = []
        serials: dict[str, list[Device]] = defaultdict(list)
        for device in fleet.devices.values():
            spec = device.spec
            connection = spec.connection
            if connection is None:
                continue
            if connection.mqtt is not None and connection.mqtt.password_from is not None:
                passwords.append(device)
            if (
                spec.gateway_ref
                and connection.modbus_tcp is not None
                and spec.verification.check_serial
            ):
                serials[spec.gateway_ref].append(device)
        return cls(tuple(passwords), {name: tuple(found) for name, found in serials.items()})


@dataclass
class Fleet:
    """The desired state: every resource by kind, then by name.

    Build it with `Fleet.of` and treat it as read-only: the parent -> children lookups are
    indexed on first use (the index is rebuilt if the number of resources changes)."""

    sites: dict[str, Site] = field(default_factory=dict)
    gateways: dict[str, Gateway] = field(default_factory=dict)
    devices: dict[str, Device] = field(default_factory=dict)
    ders: dict[str, DER] = field(default_factory=dict)
    _children: _Children | None = field(default=None, init=False, repr=False, compare=False)
    _declared: tuple[tuple[int, int, int, int], dict[str, frozenset[str]]] | None = field(
        default=None, init=False, repr=False, compare=False
    )
    _shared_zap_endpoints: tuple[tuple[int, int, int, int], dict[str, ZapPlace]] | None = field(
        default=None, init=False, repr=False, compare=False
    )
    _zap_checks: tuple[tuple[int, int, int, int], _ZapChecks] | None = field(
        default=None, init=False, repr=False, compare=False
    )
    _zap_serials: tuple[tuple[int, int, int, int], frozenset[str]] | None = field(
        default=None, init=False, repr=False, compare=False
    )

    @classmethod
    def of(cls, resources: Iterable[Resource]) -> Fleet:
        """Index resources (first declaration wins; `check_fleet` reports duplicates)."""
        fleet = cls()
        tables = fleet._tables()  # once, not per resource: a namespace has thousands
        for resource in resources:
            tables[resource.KIND].setdefault(resource.metadata.name, resource)
        return fleet

    def table(self, kind: str) -> dict[str, Resource]:
        return self._tables()[kind]

    def _tables(self) -> dict[str, dict[str, Resource]]:
        return {
            "Site": self.sites,  # type: ignore[dict-item]
            "Gateway": self.gateways,  # type: ignore[dict-item]
            "Device": self.devices,  # type: ignore[dict-item]
            "DER": self.ders,  # type: ignore[dict-item]
        }

    def resources(self) -> Iterator[Resource]:
        for kind in KINDS:
            yield from self.table(kind).values()

    def __len__(self) -> int:
        return sum(len(self.table(kind)) for kind in KINDS)

    def declared_fields(self) -> Mapping[str, frozenset[str]]:
        """Resource address -> the spec fields it sets (`model.declared`). Computed on first
        use and kept, as the children index is (rebuilt if the number of resources
        changes): every plan compares them with those of the last apply
        (`plan.removed_fields`), and every apply records them. Resources that set the same
        fields share one set: a fleet has a few shapes, and 10,000 sets of their own took
        megabytes."""
        if self._declared is None or self._declared[0] != self.size():
            shared: dict[frozenset[str], frozenset[str]] = {}
            self._declared = (self.size(), {
                resource.address: shared.setdefault(paths, paths)
                for resource in self.resources()
                for paths in (declared_paths(resource.spec),)
            })
        return self._declared[1]

    def shared_zap_endpoints(self) -> Mapping[str, ZapPlace]:
        """Device name -> the Device, its Zap Gateway's name and the connection endpoint
        it takes there (`model.zap_endpoints`), for each Device of a Zap whose endpoint
        another Device of that Zap declares too, in declaration order: the Devices the
        endpoint rule may refuse, none in a fleet without such a clash. Computed on first
        use and kept (rebuilt if the number of resources changes): the operator checks the
        rule again over the same fleet whenever a Device's status makes it hold its
        endpoint. (Kept for every Device, it would be thousands of objects more that live
        as long as the fleet, for the garbage collector to go through.)"""
        if self._shared_zap_endpoints is None or self._shared_zap_endpoints[0] != self.size():
            self.know_zap_spots(
                (device, zap_spot(self, device)) for device in self.devices.values()
            )
        assert self._shared_zap_endpoints is not None
        return self._shared_zap_endpoints[1]

    def know_zap_spots(self, spots: Iterable[tuple[Device, ZapSpot | None]]) -> None:
        """Keep `shared_zap_endpoints` of each Device's `zap_spot`, given for every Device
        in declaration order by a caller that has them already (`DeviceChecked`, which
        keeps them while the Device and its Gateway are the very objects they were)."""
        first: dict[ZapSpot, Device] = {}
        shared: dict[str, ZapPlace] = {}
        for device, spot in spots:
            if spot is None:
                continue
            other = first.setdefault(spot, device)
            if other is not device:
                shared[other.name] = (other, *spot)
                shared[device.name] = (device, *spot)
        self._shared_zap_endpoints = (self.size(), {  # in declaration order
            name: shared[name] for name in self.devices if name in shared
        } if shared else shared)

    def mqtt_password_devices(self) -> Sequence[Device]:
        """The Devices whose MQTT password is read from a Secret or variable
        (`passwordFrom`), in declaration order: every plan checks their passwords."""
        return self._checks().passwords

    def serial_checked_of(self, gateway_name: str) -> Sequence[Device]:
        """The Modbus TCP Devices behind the gateway whose serial is read before they are
        added (`verification.checkSerial`): every plan asks it of every gateway."""
        return self._checks().serials_by_gateway.get(gateway_name, ())

    def _checks(self) -> _ZapChecks:
        """Computed on first use and kept, as the children index is (rebuilt if the number
        of resources changes): one pass over the Devices instead of one at every plan."""
        if self._zap_checks is None or self._zap_checks[0] != self.size():
            self._zap_checks = (self.size(), _ZapChecks.of(self))
        return self._zap_checks[1]

    def size(self) -> tuple[int, int, int, int]:
        """Number of sites, gateways, devices and DER documents."""
        return len(self.sites), len(self.gateways), len(self.devices), len(self.ders)

    def _index(self) -> _Children:
        if self._children is None or self._children.size != self.size():
            self._children = _Children.of(self)
        return self._children

    def ders_of(self, device_name: str) -> list[DerFields]:
        """Inline DERs of a device followed by stand-alone DER documents that point at it."""
        device = self.devices.get(device_name)
        return _ders(device, self._index().ders_by_device) if device else []

    def site_of_device(self, device: Device) -> Site | None:
        if device.spec.gateway_ref:
            gateway = self.gateways.get(device.spec.gateway_ref)
            return self.sites.get(gateway.spec.site_ref) if gateway else None
        return self.sites.get(device.spec.site_ref or "")

    def zap_serials(self) -> frozenset[str]:
        """The serials of every declared Zap gateway. Computed on first use and kept, as
        the children index is (rebuilt if the number of resources changes): a plan asks
        for them three times, and each pass goes through every Gateway's spec."""
        if self._zap_serials is None or self._zap_serials[0] != self.size():
            self._zap_serials = (self.size(), frozenset(
                g.spec.zap.serial for g in self.gateways.values() if g.spec.zap
            ))
        return self._zap_serials[1]

    def gateways_of(self, site_name: str) -> list[Gateway]:
        return list(self._index().gateways_by_site.get(site_name, []))

    def devices_of(self, gateway_name: str) -> list[Device]:
        return list(self._index().devices_by_gateway.get(gateway_name, []))

    def devices_and_ders_of(self, gateway_name: str) -> list[tuple[Device, list[DerFields]]]:
        """The Devices behind the gateway, each with its DERs (`ders_of`). The planner asks
        it of every gateway: the index is checked once per gateway rather than once per
        device, and no Device is looked up again by its name."""
        index = self._index()
        standalone = index.ders_by_device
        return [
            (device, _ders(device, standalone))
            for device in index.devices_by_gateway.get(gateway_name, ())
        ]

    def hardware_ids_of(self, gateway_name: str) -> frozenset[str]:
        """The hardware ids of the Devices declared behind the gateway."""
        return self._index().hardware_ids_by_gateway.get(gateway_name, frozenset())


def _ders(device: Device, standalone_by_device: Mapping[str, list[DER]]) -> list[DerFields]:
    """Inline DERs of `device` followed by the stand-alone DER documents that point at it."""
    ders = list(device.spec.ders)
    # Most fleets declare DERs inline only: then no name is looked up, nothing converted.
    standalone = standalone_by_device.get(device.name) if standalone_by_device else None
    if standalone:
        ders += [
            DerFields(name=d.spec.name, type=d.spec.type, publish=d.spec.publish)
            for d in standalone
        ]
    return ders


def zap_spot(fleet: Fleet, device: Device) -> ZapSpot | None:
    """The name of the Zap Gateway `device` is behind and the connection endpoint it
    takes there, or None when it is behind no Zap or declares no connection: a function
    of the Device and its Gateway alone."""
    gateway = fleet.gateways.get(device.spec.gateway_ref or "")
    connection = device.spec.connection
    if gateway is None or gateway.spec.zap is None or connection is None:
        return None
    return gateway.name, zap_endpoints.of_connection(connection)


def _one_of(values: Iterable[str]) -> str:
    items = sorted(str(v) for v in values)  # StrEnum members print as their value
    return ", ".join(echo(v) for v in items) if items else "(none declared)"


def _not_declared(kind: str, name: str, declared: Iterable[str], what: str = "") -> str:
    """`Site 'cabn' is not declared (did you mean 'cabin'?); declared sites: ...`: the
    declared names capped (`name_list.listed`), the one likely meant named whatever its
    place among them. `what`: what the names are, when only some of the kind would do
    (`ucm and vucm devices`)."""
    names = list(declared)
    meant = closest(name, names)
    hint = f" (did you mean {echo(meant)}?)" if meant is not None else ""
    shown = listed(names, echo, none="(none declared)")
    return (f"{kind} {echo(name)} is not declared{hint}; "
            f"declared {what or kind.lower() + 's'}: {shown}")


def _enapter_devices(fleet: Fleet, *kinds: str) -> list[str]:
    """The names of the fleet's Devices of these Enapter kinds: what a reference to one
    of them may name."""
    return [name for name, device in fleet.devices.items()
            if device.spec.enapter is not None and device.spec.enapter.kind in kinds]


def check_fleet(
    resources: list[Resource],
    invalid: Collection[tuple[str, str]] = (),
    holders: Collection[str] = (),
    endpoint_holders: Collection[str] = (),
    fleet: Fleet | None = None,
) -> list[Problem]:
    """Every cross-field and cross-document rule. `resources` in declaration order;
    `invalid` the (kind, name) of documents that failed validation and are left out: a
    reference to one of those says so rather than that nothing of the name is declared.
    `holders`: the Devices known to hold the configOutput they declare (the operator knows
    it from their status); of two Devices declaring one, a holder keeps it and the other
    is refused, whichever was declared first. `endpoint_holders` the same for the Zap
    connection endpoint they declare (their status says they were applied there). `fleet`:
    `Fleet.of(resources)`, when the caller has it already (it is made otherwise).

    The same as `in_rule_order` of `rules_without_holders` and `holder_rules`, which a
    caller whose holders changed, and nothing else, runs apart."""
    if fleet is None:
        fleet = Fleet.of(resources)
    return in_rule_order(
        rules_without_holders(resources, fleet),
        holder_rules(fleet, holders, endpoint_holders),
        invalid,
    )


@dataclass(frozen=True)
class HolderFree:
    """What the rules that do not read the holders found, cut where the problems of those
    that do (`HolderRules`) go between them: the rules' order is kept whatever is run."""

    before_endpoints: tuple[Problem, ...]
    before_outputs: tuple[Problem, ...]
    # Device name -> what its own rules found, and in which objects: taken again by the
    # next check of an earlier fleet's objects (`rules_without_holders`).
    devices: Mapping[str, DeviceChecked] = field(
        default_factory=dict, repr=False, compare=False
    )


@dataclass(frozen=True)
class HolderRules:
    """What the rules that read the holders found: a Zap endpoint, a configOutput file or
    Secret declared twice. The holders decide only which of two Devices is refused."""

    endpoints: tuple[Problem, ...]
    outputs: tuple[Problem, ...]


def rules_without_holders(
    resources: list[Resource], fleet: Fleet, previous: HolderFree | None = None
) -> HolderFree:
    """The rules `check_fleet` runs that do not read the holders, `fleet` being
    `Fleet.of(resources)`: most of its work, the same while the resources are. `previous`:
    what they found in an earlier fleet (the operator's, of the namespace, before one
    object changed): a Device's rules whose inputs are the very objects they were then
    are taken from there (`DeviceChecked`), not run again."""
    problems: list[Problem] = []
    if len(fleet) < len(resources):  # `Fleet.of` kept the first of a name declared twice
        problems += _unique_names(resources)
    for site in fleet.sites.values():
        problems += _site_rules(site)
    problems += _unique_site_identities(fleet)
    for gateway in fleet.gateways.values():
        problems += _gateway_rules(fleet, gateway)
    problems += _unique_gateway_identities(fleet)
    before = previous.devices if previous is not None else {}
    devices: dict[str, DeviceChecked] = {}
    for name, device in fleet.devices.items():
        checked = devices[name] = _device_checked(fleet, device, before.get(name))
        problems += checked.problems
    # What the rules reading the holders ask of every Device, known now (as DeviceChecked).
    fleet.know_zap_spots((checked.device, checked.spot) for checked in devices.values())
    problems += _der_rules(fleet, devices)
    problems += _unique_hardware_ids(fleet)
    between = _unique_enapter_slugs(fleet)
    between += _unique_flatpeak_references(fleet)
    between += _unique_flatpeak_locations(fleet)
    return HolderFree(tuple(problems), tuple(between), devices)


def holder_rules(
    fleet: Fleet, holders: Collection[str] = (), endpoint_holders: Collection[str] = ()
) -> HolderRules:
    """The rules `check_fleet` runs that read the holders (see there)."""
    return HolderRules(
        tuple(_unique_zap_endpoints(fleet, endpoint_holders)),
        (*_config_output_files(fleet, holders), *_config_output_secrets(fleet, holders)),
    )


def in_rule_order(
    free: HolderFree, held: HolderRules, invalid: Collection[tuple[str, str]] = ()
) -> list[Problem]:
    """The problems `check_fleet` reports of what `rules_without_holders` and
    `holder_rules` found, in its order; a reference to a document of `invalid` says it is
    not valid."""
    return [
        replace(
            problem,
            message=f"{problem.refers_to[0]} {echo(problem.refers_to[1])} is declared but not "
            "valid (see its errors)",
        )
        if problem.refers_to is not None and problem.refers_to in invalid
        else problem
        for problems in (free.before_endpoints, held.endpoints, free.before_outputs,
                         held.outputs)
        for problem in problems
    ]


def _unique_names(resources: list[Resource]) -> list[Problem]:
    # References carry no namespace and `Fleet` indexes by name, so a name is unique per
    # kind across namespaces (keyed with the namespace, a second one was silently dropped).
    seen: dict[tuple[str, str], int] = {}
    problems = []
    for resource in resources:
        key = (resource.KIND, resource.name)
        seen[key] = seen.get(key, 0) + 1
        if seen[key] > 1:
            problems.append(
                Problem(
                    resource.KIND,
                    resource.name,
                    ("metadata", "name"),
                    f"{resource.KIND} {echo(resource.name)} is declared more than once; "
                    "names must be unique per kind",
                    index=seen[key] - 1,
                )
            )
    return problems


def _site_rules(site: Site) -> list[Problem]:
    flatpeak = site.spec.flatpeak
    has_address = site.spec.location is not None and site.spec.location.address is not None
    if flatpeak is not None and flatpeak.location_id is None and not has_address:
        # Flatpeak creates a location from a postal address; without one it cannot.
        return [
            Problem(
                "Site",
                site.name,
                ("spec", "flatpeak"),
                "a Flatpeak location is created from the site's postal address: set "
                "`location.address`, or `locationId` to use an existing location",
            )
        ]
    return []


def _unique_site_identities(fleet: Fleet) -> list[Problem]:
    """Two Sites must never find the same remote site. A Site is found by `siteId` when it
    has one, else by display name (in its organisation on Novacore; among all sites the
    token sees on Enapter), so a display name may repeat only between Sites that both
    adopt a site by id (see `match_site` in plan.novacore_sites and plan.enapter_sites)."""
    problems = []
    names: dict[tuple[str, str, str], list[Site]] = defaultdict(list)
    ids: dict[tuple[str, str], Site] = {}
    for site in fleet.sites.values():
        blocks: list[tuple[str, str, str | None, str]] = []
        if site.spec.novacore is not None:
            org = site.spec.novacore.org_id
            blocks.append(("novacore", org, site.spec.novacore.site_id, f"in {org}"))
        if site.spec.enapter is not None:
            blocks.append(("enapter", "", site.spec.enapter.site_id, "in Enapter Cloud"))
        for platform, scope, site_id, where in blocks:
            if site_id is not None:
                owner = ids.setdefault((platform, site_id), site)
                if owner is not site:
                    problems.append(
                        Problem(
                            "Site",
                            site.name,
                            ("spec", platform, "siteId"),
                            f"siteId {echo(site_id)} is already used by Site {echo(owner.name)}; "
                            "each Site must name a site of its own",
                        )
                    )
                    continue
            same_name = names[(platform, scope, site.spec.display_name)]
            clash = next(
                (
                    other
                    for other in same_name
                    if site_id is None or _site_id(other, platform) is None
                ),
                None,
            ) if same_name else None
            if clash is not None:
                problems.append(
                    Problem(
                        "Site",
                        site.name,
                        ("spec", "displayName"),
                        f"displayName {echo(site.spec.display_name)} is already used by Site "
                        f"{echo(clash.name)} {where}; "
                        + _name_clash_fix(site_id, clash.name, _site_id(clash, platform)),
                    )
                )
            same_name.append(site)
    return problems


def _site_id(site: Site, platform: str) -> str | None:
    block = site.spec.novacore if platform == "novacore" else site.spec.enapter
    return block.site_id if block is not None else None


def _name_clash_fix(site_id: str | None, other: str, other_id: str | None) -> str:
    """What ends a clash of two Sites' display names: the one without a `siteId` is found
    by its name, and could be the site the other names, so it is the one to change."""
    if site_id is not None and other_id is None:
        return (f"set distinct display names, or a siteId on Site {echo(other)} too (found "
                "by its name, it could be the site this Site names)")
    if site_id is None and other_id is not None:
        return (f"set distinct display names, or a siteId on this Site too (found by its "
                f"name, it could be the site Site {echo(other)} names)")
    return "set distinct display names or siteId"


def _gateway_rules(fleet: Fleet, gateway: Gateway) -> list[Problem]:
    problems = []
    site = fleet.sites.get(gateway.spec.site_ref)
    if site is None:
        problems.append(
            Problem(
                "Gateway",
                gateway.name,
                ("spec", "siteRef"),
                _not_declared("Site", gateway.spec.site_ref, fleet.sites),
                code=DANGLING,
                refers_to=("Site", gateway.spec.site_ref),
            )
        )
        return problems
    zap = gateway.spec.zap
    if zap is not None and zap.org_id is None and site.spec.novacore is None:
        problems.append(
            Problem(
                "Gateway",
                gateway.name,
                ("spec", "zap", "orgId"),
                f"no Novacore organisation to claim into: set `orgId` here or a "
                f"`novacore` block on Site {echo(site.name)}",
            )
        )
    site_org = site.spec.novacore.org_id if site.spec.novacore is not None else None
    if zap is not None and zap.org_id is not None and site_org and zap.org_id != site_org:
        # Novacore provisions a device into a site only through a gateway claimed by the
        # site's organisation (403 gateway_not_in_org): an apply would claim the gateway,
        # add its devices to the Zap, and only then fail to provision them.
        problems.append(
            Problem(
                "Gateway",
                gateway.name,
                ("spec", "zap", "orgId"),
                f"{echo(zap.org_id)} is not the organisation of Site {echo(site.name)} "
                f"({echo(site_org)}); "
                "Novacore provisions a site's devices only through a gateway its organisation "
                "claimed: remove `orgId` (it defaults to the Site's) or set it to "
                f"{echo(site_org)}",
            )
        )
    if gateway.spec.enapter is not None and site.spec.enapter is None:
        problems.append(
            Problem(
                "Gateway",
                gateway.name,
                ("spec", "enapter"),
                f"an Enapter gateway needs an `enapter` block on Site {echo(site.name)}",
            )
        )
    return problems


def _unique_gateway_identities(fleet: Fleet) -> list[Problem]:
    problems = []
    owners: dict[str, str] = {}
    for gateway in fleet.gateways.values():
        if gateway.spec.zap is not None:
            key, path = f"zap:{gateway.spec.zap.serial}", ("spec", "zap", "serial")
        elif gateway.spec.enapter is not None:
            key = f"enapter:{gateway.spec.enapter.hardware_id}"
            path = ("spec", "enapter", "hardwareId")
        else:  # pragma: no cover - the model requires one platform
            continue
        if key in owners:
            problems.append(
                Problem(
                    "Gateway",
                    gateway.name,
                    path,
                    f"the same gateway is already declared as Gateway {echo(owners[key])}",
                    clashes_with=("Gateway", owners[key], path),
                )
            )
        else:
            owners[key] = gateway.name
    return problems


@dataclass(frozen=True, slots=True)
class DeviceChecked:
    """What a Device's own rules (`_device_rules`) found, where it is on its Zap, what
    the DER rules find of its inline DERs, and every object of the fleet they read for
    it: the same while each of those is the very object it was (models are frozen, and
    each object validated is kept by its content: `operator.objects`). A reference that
    names nothing is not among them: its problem lists the names declared, which any
    object added or removed changes, so such a Device's rules always run
    (`_device_checked`)."""

    device: Device
    gateway: Gateway | None  # its gatewayRef's
    site: Site | None  # `Fleet.site_of_device`
    runtime: Device | None  # its Enapter runtimeRef's
    master: Device | None  # its Enapter masterRef's
    problems: tuple[Problem, ...]
    # Where it is on its Zap (`zap_spot`), of the Device and its Gateway alone: what
    # `Fleet.shared_zap_endpoints` is made of.
    spot: ZapSpot | None
    # What the DER rules find of its inline DERs when no DER document names it
    # (`_device_ders`), of the Device alone: they are said after every Device's rules.
    ders: tuple[Problem, ...]


def _device_checked(
    fleet: Fleet, device: Device, before: DeviceChecked | None
) -> DeviceChecked:
    """`device`'s rules: what they found `before`, when they read the very same objects
    now, else run again."""
    spec = device.spec
    gateway = fleet.gateways.get(spec.gateway_ref) if spec.gateway_ref else None
    site = fleet.site_of_device(device)
    enapter = spec.enapter
    runtime_ref = enapter.runtime_ref if enapter is not None else None
    master_ref = enapter.master_ref if enapter is not None else None
    runtime = fleet.devices.get(runtime_ref) if runtime_ref is not None else None
    master = fleet.devices.get(master_ref) if master_ref is not None else None
    names_nothing = (
        (bool(spec.gateway_ref) and gateway is None)
        or (bool(spec.site_ref) and spec.site_ref not in fleet.sites)
        or (runtime_ref is not None and runtime is None)
        or (master_ref is not None and master is None)
    )
    if (
        before is not None
        and not names_nothing
        and before.device is device
        and before.gateway is gateway
        and before.site is site
        and before.runtime is runtime
        and before.master is master
    ):
        return before
    return DeviceChecked(
        device, gateway, site, runtime, master, tuple(_device_rules(fleet, device)),
        zap_spot(fleet, device), tuple(_device_ders(device, ())),
    )


def _device_rules(fleet: Fleet, device: Device) -> list[Problem]:
    """The rules of one Device: a function of the Device and of the objects
    `DeviceChecked` names, but for a reference that names nothing."""
    spec = device.spec
    name = device.name
    problems: list[Problem] = []

    def problem(
        path: Path, message: str, code: str = "", refers_to: tuple[str, str] | None = None
    ) -> None:
        problems.append(Problem("Device", name, path, message, code=code, refers_to=refers_to))

    gateway = fleet.gateways.get(spec.gateway_ref) if spec.gateway_ref else None
    if spec.gateway_ref and gateway is None:
        problem(
            ("spec", "gatewayRef"),
            _not_declared("Gateway", spec.gateway_ref, fleet.gateways),
            DANGLING,
            ("Gateway", spec.gateway_ref),
        )
    if spec.site_ref and spec.site_ref not in fleet.sites:
        problem(
            ("spec", "siteRef"),
            _not_declared("Site", spec.site_ref, fleet.sites),
            DANGLING,
            ("Site", spec.site_ref),
        )
    if not spec.gateway_ref and not spec.site_ref:
        problem(
            ("spec",),
            "set `gatewayRef` (a device behind a gateway) or `siteRef` (a cloud-only device)",
        )
    if gateway and spec.site_ref and gateway.spec.site_ref != spec.site_ref:
        problem(
            ("spec", "siteRef"),
            f"Gateway {echo(gateway.name)} is at Site {echo(gateway.spec.site_ref)}, "
            f"not {echo(spec.site_ref)}",
        )

    on_zap = gateway is not None and gateway.spec.zap is not None
    if on_zap:
        for field_name, value in (
            ("connection", spec.connection),
            ("deviceType", spec.device_type),
            ("hardwareId", spec.hardware_id),
        ):
            if value is None:
                problem(("spec", field_name), f"a device on a Zap gateway needs `{field_name}`")
        if spec.enapter is not None:
            problem(
                ("spec", "enapter"),
                "a device on a Zap gateway cannot be an Enapter device; "
                "point `gatewayRef` at an Enapter gateway or use `siteRef`",
            )
    elif spec.connection is not None and (gateway is not None or not spec.gateway_ref):
        # (a dangling gatewayRef is reported above; do not blame the connection for it)
        problem(
            ("spec", "connection"),
            "`connection` describes how a Zap talks to the device; it needs `gatewayRef` "
            "naming a Zap gateway",
        )
    if gateway is not None and gateway.spec.enapter is not None and spec.enapter is None:
        problem(("spec", "enapter"), "a device on an Enapter gateway needs an `enapter` block")
    if gateway is None and spec.site_ref and spec.enapter is None and spec.flatpeak is None:
        problem(
            ("spec",),
            "a device without a gateway must be registered somewhere: add an "
            "`enapter` or `flatpeak` block, or set `gatewayRef`",
        )

    if spec.ders and spec.device_type is None:
        problem(("spec", "deviceType"), "DERs need a `deviceType` to check them against")
    if spec.connection is not None:
        problems += _connection_rules(device)
    if spec.verification.check_serial and (
        spec.connection is None or spec.connection.type != "modbus_tcp"
    ):
        # The serial is read before the device is added, over Modbus TCP: directly, or
        # through the Zap's /api/modbus/read, which takes an address and port. A device on
        # the Zap's serial line (RTU) cannot be reached that way until it is added, and a
        # check that silently never runs would provision the wrong device all the same.
        problem(
            ("spec", "verification", "checkSerial"),
            "serial checks read Modbus registers over TCP before the device is added (the "
            "Zap's /api/modbus/read takes an address and port); they need a `modbusTcp` "
            "connection: remove `checkSerial` for this device",
        )

    site = fleet.site_of_device(device)
    if spec.enapter is not None and not on_zap:  # on a Zap it is wrong as a whole (above)
        problems += _enapter_rules(fleet, device, gateway)
        if site is not None and site.spec.enapter is None:
            problem(("spec", "enapter"), f"Site {echo(site.name)} has no `enapter` block")
    if spec.flatpeak is not None and site is not None and site.spec.flatpeak is None:
        problem(("spec", "flatpeak"), f"Site {echo(site.name)} has no `flatpeak` block")
    if on_zap and site is not None and site.spec.novacore is None:
        problem(
            ("spec", "gatewayRef"),
            f"devices on a Zap are provisioned in Novacore: Site {echo(site.name)} needs a "
            "`novacore` block",
        )
    return problems


def _connection_rules(device: Device) -> list[Problem]:
    connection = device.spec.connection
    assert connection is not None
    ctype, settings = connection.chosen()
    profile_name = settings.profile
    profile = PROFILES.get(profile_name)
    if profile is None or ctype not in profile.connection_types:
        return [
            Problem(
                "Device",
                device.name,
                ("spec", "connection", zap_endpoints.SPEC_NAMES[ctype], "profile"),
                f"profile {echo(profile_name)} does not work over {ctype}; valid profiles: "
                f"{_one_of(profiles_for(ctype))}",
            )
        ]
    if device.spec.device_type is not None and device.spec.device_type != profile.device_type:
        return [
            Problem(
                "Device",
                device.name,
                ("spec", "deviceType"),
                f"profile {echo(profile_name)} reports device type "
                f"{echo(profile.device_type.value)}, "
                f"not {echo(device.spec.device_type)}",
            )
        ]
    return []


def _enapter_rules(fleet: Fleet, device: Device, gateway: Gateway | None) -> list[Problem]:
    enapter = device.spec.enapter
    assert enapter is not None
    problems: list[Problem] = []
    base: Path = ("spec", "enapter")

    def problem(
        path: Path, message: str, code: str = "", refers_to: tuple[str, str] | None = None
    ) -> None:
        problems.append(
            Problem("Device", device.name, path, message, code=code, refers_to=refers_to)
        )

    kind = EnapterKind(enapter.kind)
    needs_hardware = kind in {
        EnapterKind.UCM,
        EnapterKind.VUCM,
        EnapterKind.EMBEDDED,
        EnapterKind.LINK_MASTER,
        EnapterKind.LINK_SLAVE,
    }
    if needs_hardware and device.spec.hardware_id is None:
        problem(("spec", "hardwareId"), f"an Enapter `{kind.value}` needs `hardwareId`")
    if kind is EnapterKind.EMBEDDED and enapter.embedded_type is None:
        problem(
            (*base, "embeddedType"),
            "an `embedded` device needs `embeddedType`: 'ELECTROLYSER', 'DRYER' or 'WATER_TANK'",
        )
    if kind is not EnapterKind.EMBEDDED and enapter.embedded_type is not None:
        problem((*base, "embeddedType"), "`embeddedType` applies only to kind `embedded`")
    if kind is EnapterKind.LUA:
        if enapter.blueprint_id is None:
            problem((*base, "blueprintId"), "a `lua` device needs `blueprintId`")
        runtime = fleet.devices.get(enapter.runtime_ref or "")
        if enapter.runtime_ref is None:
            problem((*base, "runtimeRef"), "a `lua` device needs `runtimeRef`: the UCM it runs on")
        elif runtime is None:
            problem(
                (*base, "runtimeRef"),
                _not_declared("Device", enapter.runtime_ref,
                              _enapter_devices(fleet, "ucm", "vucm"), "ucm and vucm devices"),
                DANGLING,
                ("Device", enapter.runtime_ref),
            )
        elif runtime.spec.enapter is None or runtime.spec.enapter.kind not in ("ucm", "vucm"):
            problem(
                (*base, "runtimeRef"),
                f"Device {echo(enapter.runtime_ref)} is not a `ucm` or `vucm`",
            )
    elif enapter.runtime_ref is not None:
        problem((*base, "runtimeRef"), "`runtimeRef` applies only to kind `lua`")
    if kind is EnapterKind.LINK_SLAVE:
        master = fleet.devices.get(enapter.master_ref or "")
        if enapter.master_ref is None:
            problem((*base, "masterRef"), "a `link_slave` needs `masterRef`: its LINK master")
        elif master is None:
            problem(
                (*base, "masterRef"),
                _not_declared("Device", enapter.master_ref,
                              _enapter_devices(fleet, "link_master"), "link_master devices"),
                DANGLING,
                ("Device", enapter.master_ref),
            )
        elif master.spec.enapter is None or master.spec.enapter.kind != "link_master":
            problem((*base, "masterRef"),
                    f"Device {echo(enapter.master_ref)} is not a `link_master`")
    elif enapter.master_ref is not None:
        problem((*base, "masterRef"), "`masterRef` applies only to kind `link_slave`")
    if kind in {EnapterKind.VUCM, EnapterKind.LINK_MASTER, EnapterKind.LINK_SLAVE}:
        if gateway is None and device.spec.gateway_ref:
            pass  # the reference itself is reported (undeclared, or declared but invalid)
        elif gateway is None or gateway.spec.enapter is None:
            problem(
                ("spec", "gatewayRef"),
                f"a `{kind.value}` needs `gatewayRef` naming an Enapter Gateway 3.x",
            )
        elif not (version := gateway.spec.enapter.firmware_version).startswith("3."):
            problem(
                ("spec", "gatewayRef"),
                f"a `{kind.value}` needs Enapter Gateway 3.x; "
                f"Gateway {echo(gateway.name)} runs {version}",
            )
    return problems


def _der_rules(fleet: Fleet, checked: Mapping[str, DeviceChecked]) -> list[Problem]:
    """The DER documents naming no Device, then each Device's DERs (`_device_ders`), in
    declaration order. `checked`: every Device's `DeviceChecked`, whose `ders` are those
    of a Device no DER document names."""
    problems: list[Problem] = []
    standalone_by_device: dict[str, list[DER]] = defaultdict(list)
    for der in fleet.ders.values():
        standalone_by_device[der.spec.device_ref].append(der)
        if der.spec.device_ref not in fleet.devices:
            problems.append(
                Problem(
                    "DER",
                    der.name,
                    ("spec", "deviceRef"),
                    _not_declared("Device", der.spec.device_ref, fleet.devices),
                    code=DANGLING,
                    refers_to=("Device", der.spec.device_ref),
                )
            )
    for name, device in fleet.devices.items():
        standalone = standalone_by_device.get(name)
        if standalone:
            problems += _device_ders(device, standalone)
        else:
            problems += checked[name].ders
    return problems


# A fleet has a few device types: each looked up once (every Device's DERs are checked).
_allowed_ders = functools.cache(allowed_der_types)


def _device_ders(device: Device, standalone: Sequence[DER]) -> list[Problem]:
    """What the DER rules find of `device`'s inline DERs and of the DER documents naming
    it (`standalone`, in declaration order): a function of these alone."""
    name = device.metadata.name
    inline = device.spec.ders
    if not inline and not standalone:
        return []  # no DER on it: nothing below applies
    problems: list[Problem] = []
    seen: set[str] = set()
    device_type = device.spec.device_type
    allowed = _allowed_ders(device_type) if device_type else None
    if not standalone and allowed is not None and _fitting(inline, allowed):
        return problems  # as most devices are: nothing below would find a problem
    entries: list[tuple[str, str, Path, DerFields]] = [
        ("Device", name, ("spec", "ders", i), d) for i, d in enumerate(inline)
    ]
    # A DER document's spec is the DER's fields (`DerSpec` is a `DerFields`).
    entries += [("DER", d.metadata.name, ("spec",), d.spec) for d in standalone]
    if standalone and allowed is None:
        problems += [
            Problem(
                "DER",
                d.name,
                ("spec", "deviceRef"),
                f"Device {echo(name)} has no `deviceType` to check this DER against",
            )
            for d in standalone
        ]
    if standalone:
        problems += _ders_over_the_limit(device, list(standalone))
    for kind, owner, path, der_fields in entries:
        if der_fields.name in seen:
            problems.append(
                Problem(
                    kind,
                    owner,
                    (*path, "name"),
                    f"DER name {echo(der_fields.name)} is used twice on Device "
                    f"{echo(name)}; DER names are unique per device",
                )
            )
        seen.add(der_fields.name)
        if allowed is not None and der_fields.type not in allowed:
            problems.append(
                Problem(
                    kind,
                    owner,
                    (*path, "type"),
                    f"a device of type {echo(device_type)} provides no "
                    f"{echo(der_fields.type)} DER; valid types: {_one_of(allowed)}",
                )
            )
    return problems


def _fitting(ders: Sequence[DerFields], allowed: frozenset[str]) -> bool:
    """Whether inline `ders` have names of their own and types in `allowed`."""
    return len({d.name for d in ders}) == len(ders) and all(d.type in allowed for d in ders)


def _ders_over_the_limit(device: Device, standalone: list[DER]) -> list[Problem]:
    """One problem per DER document beyond the limit, in declaration order. The limit holds
    for inline DERs and DER documents together: the model alone stops inline ones at the
    limit, and a device over it is not valid, so only DER documents can exceed it here."""
    inline = len(device.spec.ders)
    room = max(MAX_DERS_PER_DEVICE - inline, 0)
    total = inline + len(standalone)
    return [
        Problem(
            "DER",
            der.name,
            ("spec", "deviceRef"),
            f"Device {echo(device.name)} would have {total} DERs ({inline} inline and "
            f"{len(standalone)} in DER documents); a device has at most "
            f"{MAX_DERS_PER_DEVICE}, inline and DER documents together: move this DER to "
            "another device or remove it",
        )
        for der in standalone[room:]
    ]


def _unique_hardware_ids(fleet: Fleet) -> list[Problem]:
    problems = []
    seen: dict[tuple[str, str], str] = {}
    for device in fleet.devices.values():
        scope = device.spec.gateway_ref
        if not scope or device.spec.hardware_id is None:
            continue
        key = (scope, device.spec.hardware_id)
        if key in seen:
            problems.append(
                Problem(
                    "Device",
                    device.name,
                    ("spec", "hardwareId"),
                    f"hardwareId {echo(device.spec.hardware_id)} is already used by "
                    f"Device {echo(seen[key])} on Gateway {echo(scope)}; it must be "
                    "unique per gateway",
                    clashes_with=("Device", seen[key], ("spec", "hardwareId")),
                )
            )
        else:
            seen[key] = device.name
    return problems


def _unique_zap_endpoints(fleet: Fleet, holders: Collection[str] = ()) -> list[Problem]:
    """Two Devices of one Zap at one connection endpoint (`model.zap_endpoints`): the Zap
    refuses (409) to add the second, on every apply. The one holding it (`holders`: it was
    applied there) keeps it, else the first declared: an older Device edited onto the
    endpoint of a newer one, which works there, is the one refused. A Device of the same
    hardwareId is refused for that already (`_unique_hardware_ids`)."""
    problems = []
    seen: dict[tuple[str, zap_endpoints.Endpoint], Device] = {}
    # A Device alone at its endpoint is never refused, nor does it decide who is.
    for device, gateway, endpoint in _holders_first(fleet.shared_zap_endpoints(), holders):
        first = seen.setdefault((gateway, endpoint), device)
        if first is device or first.spec.hardware_id == device.spec.hardware_id:
            continue
        problems.append(
            Problem(
                "Device",
                device.name,
                endpoint.field,
                f"{endpoint.described()} on Gateway {echo(gateway)} is already taken by "
                f"Device {echo(first.name)}; the Zap refuses (409) to add a second device "
                f"there: {endpoint.remedy()}",
                clashes_with=("Device", first.name, endpoint.field),
            )
        )
    return problems


def _unique_enapter_slugs(fleet: Fleet) -> list[Problem]:
    """Enapter finds standalone and Lua devices by slug within their site, and a slug is
    unique in an Enapter site: two devices of one Site with one slug would be one device."""
    problems = []
    seen: dict[tuple[str, str], Device] = {}
    for device in fleet.devices.values():
        slug = device.enapter_slug
        site = fleet.site_of_device(device) if slug is not None else None
        if slug is None or site is None:
            continue
        key = (site.name, slug)
        if key in seen:
            first = seen[key]
            problems.append(
                Problem(
                    "Device",
                    device.name,
                    _slug_path(device),
                    f"Enapter slug {echo(slug)} is already used by Device {echo(first.name)} "
                    "at Site "
                    f"{echo(site.name)}; slugs are unique per site"
                    + ("" if _slug_declared(device) else " (the slug defaults to the "
                       "resource name; set `enapter.slug`)"),
                    clashes_with=("Device", first.name, _slug_path(first)),
                )
            )
        else:
            seen[key] = device
    return problems


def _slug_declared(device: Device) -> bool:
    return bool(device.spec.enapter is not None and device.spec.enapter.slug)


def _slug_path(device: Device) -> Path:
    """Where a Device's Enapter slug comes from: its `enapter.slug`, or its name."""
    return ("spec", "enapter", "slug") if _slug_declared(device) else ("metadata", "name")


def _unique_flatpeak_references(fleet: Fleet) -> list[Problem]:
    problems = []
    seen: dict[str, str] = {}
    for device in fleet.devices.values():
        if device.spec.flatpeak is None:
            continue
        ref = device.spec.flatpeak.reference_id
        if ref in seen:
            problems.append(
                Problem(
                    "Device",
                    device.name,
                    ("spec", "flatpeak", "referenceId"),
                    f"referenceId {echo(ref)} is already used by Device {echo(seen[ref])}",
                )
            )
        else:
            seen[ref] = device.name
    return problems


def _unique_flatpeak_locations(fleet: Fleet) -> list[Problem]:
    """Two Sites on one Flatpeak location would write its address and customer in turn, one
    apply each, for ever. (A `locationId` that is another Site's location by reference id
    can only be seen once the locations are listed: `plan.flatpeak` blocks it.)"""
    problems = []
    seen: dict[str, str] = {}
    for site in fleet.sites.values():
        location_id = site.spec.flatpeak.location_id if site.spec.flatpeak else None
        if location_id is None:
            continue
        if location_id in seen:
            problems.append(
                Problem(
                    "Site",
                    site.name,
                    ("spec", "flatpeak", "locationId"),
                    f"locationId {echo(location_id)} is already the location of Site "
                    f"{echo(seen[location_id])}; a Flatpeak location belongs to one Site: give "
                    "this Site another locationId, or none to create its own",
                )
            )
        else:
            seen[location_id] = site.name
    return problems


_CONFIG_FILE: Path = ("spec", "enapter", "configOutput", "file")


def _holders_first(by_device: Mapping[str, T], holders: Collection[str]) -> list[T]:
    """What `by_device` has of each Device (by name, in declaration order), of those in
    `holders` first (holding their configOutput, or their Zap endpoint), each group in
    declaration order: of two declaring one output, or endpoint, its holder, if one holds
    it, is the first. (The refusal does not say which holds it: its message would change,
    and be said again, once the first is recorded as holding it.)"""
    if not holders:  # as an operator's fleet mostly has: none recorded yet, or the CLI's
        return list(by_device.values())
    return [item for name, item in by_device.items() if name in holders] + [
        item for name, item in by_device.items() if name not in holders
    ]


def _config_output_files(fleet: Fleet, holders: Collection[str] = ()) -> list[Problem]:
    """A device's config is written over whatever its `configOutput.file` names (see
    `engine.enapter`): a file of the state directory, or another device's config, would be
    lost without a word. A relative path is taken under the state directory, so it is
    checked here, normalised; an absolute path can only be compared with the others (where
    the state directory is, is a setting: the engine checks it again at write time). A
    path starting with `~` is neither: it is refused (`_home_path`)."""
    problems = []
    seen: dict[str, tuple[str, str]] = {}  # normalised path -> first Device, its spelling
    for device in _holders_first(fleet.devices, holders):
        enapter = device.spec.enapter
        declared = enapter.config_output.file if enapter and enapter.config_output else None
        if declared is None:
            continue
        normal = posixpath.normpath(declared)
        clash: tuple[str, str, Path] | None = None
        if declared.startswith("~"):
            problem: str | None = _home_path(declared, device.name)
        elif declared.startswith("/"):
            problem = None
        else:
            problem = _state_dir_clash(declared, normal, device.name)
        if problem is None and normal in seen:
            first, spelled = seen[normal]
            clash = ("Device", first, _CONFIG_FILE)
            problem = (
                f"file {echo(declared)} is already the configOutput of Device {echo(first)}"
                + ("" if spelled == declared else f" (as {echo(spelled)})")
                + "; one device's config would replace the other's: give each device a file "
                "of its own"
            )
        if problem is not None:
            problems.append(
                Problem("Device", device.name, _CONFIG_FILE, problem, clashes_with=clash)
            )
        seen.setdefault(normal, (device.name, declared))
    return problems


def _home_path(declared: str, device: str) -> str:
    """Why a `configOutput.file` starting with `~` is refused. A shell would expand it, the
    reconciler does not: whose home `~` is, and whether `~user` exists at all, depends on
    the machine and user that run it (a workstation, a CI job, the operator's container),
    so the same fleet would write credentials to different places, or fail, depending on
    where it runs. Taken literally, it would be a directory named `~` under the state
    directory, which no one writing it means."""
    return (
        f"file {echo(declared)} starts with '~', which is not expanded (whose home it names "
        "depends on the machine and user running the reconciler): give an absolute path, "
        f"e.g. '/var/lib/enapter/{device}.json', or a path relative to the state directory "
        f"(RECONCILER_STATE_DIR), e.g. 'secrets/{device}.json'"
    )


_CONFIG_SECRET: Path = ("spec", "enapter", "configOutput", "secretName")


def _config_output_secrets(fleet: Fleet, holders: Collection[str] = ()) -> list[Problem]:
    """The operator writes a device's config over the Secret its `configOutput.secretName`
    names, in the device's namespace: two devices of a namespace naming one Secret would
    replace each other's config, as two devices sharing a `configOutput.file` would."""
    problems = []
    seen: dict[tuple[str | None, str], str] = {}  # (namespace, Secret) -> first Device
    for device in _holders_first(fleet.devices, holders):
        enapter = device.spec.enapter
        secret = enapter.config_output.secret_name if enapter and enapter.config_output else None
        if secret is None:
            continue
        first = seen.setdefault((device.metadata.namespace, secret), device.name)
        if first != device.name:
            problems.append(
                Problem(
                    "Device",
                    device.name,
                    _CONFIG_SECRET,
                    f"Secret {echo(secret)} is already the configOutput of Device "
                    f"{echo(first)}; one "
                    "device's config would replace the other's: give each device a Secret "
                    "of its own",
                    clashes_with=("Device", first, _CONFIG_SECRET),
                )
            )
    return problems


def _state_dir_clash(declared: str, normal: str, device: str) -> str | None:
    """Why a relative `configOutput.file` (`normal`, normalised) may not be written under
    the state directory, or None when it may."""
    parts = normal.split("/")
    suggestion = f"e.g. 'secrets/{device}.json'"
    if normal == ".":
        return (
            f"file {echo(declared)} names the state directory itself (RECONCILER_STATE_DIR): "
            f"name a file in it, {suggestion}"
        )
    if parts[0] == "..":
        return (
            f"file {echo(declared)} leaves the state directory (RECONCILER_STATE_DIR), which a "
            f"relative path is taken under: name a file in it, {suggestion}, or give an "
            "absolute path"
        )
    own = state_file_in(parts)
    if own is None:
        return None
    clash = "is" if len(parts) == 1 else "runs through"
    return (
        f"file {echo(declared)} {clash} the state directory's own {echo(own)} (a relative path is "
        "taken under RECONCILER_STATE_DIR), which the config would destroy; the state "
        f"directory keeps {', '.join(STATE_FILES)} (and their .tmp files): name another "
        f"file, {suggestion}"
    )
