"""PURE: devices about to be added to a Zap (created, or replaced: removed and added again)
at a connection endpoint a device already on that Zap takes (`model.zap_endpoints`: the
same Modbus TCP address and unit, RS-485 unit id, the P1 UART, MQTT broker and profile).

The Zap refuses such an add (409), on every apply. Two declared Devices cannot clash so
(`model.fleet` refuses them), but a device on the Zap can: one nobody declares, one a
Device declares with settings the Zap keeps (a default the spec leaves out is not
compared), or an MQTT device the Zap named after its broker while the Device declares
another `hardwareId`. `settle` runs once a gateway's devices are planned:

- an endpoint the same plan frees first (the device there is removed with `--prune`, or
  replaced at another endpoint) is waited for: the add depends on that change, as changes
  of one apply run concurrently, ordered only by what they depend on. Whether that change
  goes this time is known only once every site is planned (a copy a moved device left
  waits for its new Zap, which may be offline): `after_frees` then defers, or blocks, an
  add whose endpoint is freed by a change deferred, or blocked, naming it;
- any other is blocked before anything is written, naming the device there and what to
  change; what waits on the add is blocked with it. Devices that would trade endpoints
  (each replaced onto the other's) would wait on each other for ever: both are blocked.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from reconciler.model import zap_endpoints
from reconciler.model.device import Device
from reconciler.model.fleet import Fleet
from reconciler.plan.actions import Action, Change, defer
from reconciler.plan.advice import Advice, Audience
from reconciler.plan.observed import ZapDevice, ZapState
from reconciler.printable import printable, quoted

Block = Callable[[Change, Change], None]  # block a change for the cause given
# Who removes a device of the Zap that no Device declares.
_REMOVES_UNDECLARED = Advice(
    cli="`apply --prune` removes what no Device declares",
    operator="the operator deletes nothing it does not declare, and lists it in "
    "status.unmanaged",
)
_ADDS = (Action.CREATE, Action.REPLACE)


@dataclass(frozen=True, slots=True)
class Wait:
    """An add ordered after the change that frees its endpoint (`settle`)."""

    add: Change
    frees: Change
    endpoint: zap_endpoints.Endpoint


def settle(gateway: str, zap: ZapState, changes: Sequence[Change], fleet: Fleet,
           block: Block, audience: Audience) -> list[Wait]:
    """Order or block the adds among `changes` (the changes planned for the devices of
    `gateway`, whose Zap reports `zap`) that go where a device of the Zap is. Returns the
    adds ordered after a change, for `after_frees` once every site is planned."""
    on_zap = [c for c in changes if c.component == "zap" and c.kind == "Device"]
    if not any(c.action in _ADDS and not c.blocked for c in on_zap):
        # Nothing is added, as on most gateways: no endpoint can clash, nothing waits.
        return []
    by_serial = {c.external_id: c for c in on_zap if c.external_id is not None}
    waits: dict[str, Change] = {}  # an add's address -> the change that frees its endpoint
    ordered: list[Wait] = []
    newly: dict[str, Change] = {}  # the adds blocked here, by address
    for change in on_zap:
        device = fleet.devices.get(change.name)
        if change.action not in _ADDS or change.blocked or device is None:
            continue
        connection, hardware_id = device.spec.connection, device.spec.hardware_id
        if connection is None or hardware_id is None:
            continue
        endpoint = zap_endpoints.of_connection(connection)
        held = next((d for d in zap.devices.values()
                     if d.sn != hardware_id and _endpoint(d) == endpoint), None)
        if held is None:
            continue
        frees = by_serial.get(held.sn)
        if frees is not None and _frees(frees, endpoint, fleet):
            waits[change.address] = frees
            ordered.append(Wait(change, frees, endpoint))
            change.depends_on = [*change.depends_on, frees.address]
            change.message += f"; added once {frees.address} frees {endpoint.described()}"
            continue
        change.blocked = True
        change.message = clash_message(gateway, device, endpoint, held, fleet, audience)
        newly[change.address] = change
    newly |= _block_trades(waits)
    _block_dependents(changes, waits, newly, block)
    return [w for w in ordered if not w.add.blocked]


def after_frees(waits: Sequence[Wait], changes: Sequence[Change], block: Block) -> None:
    """Once every site is planned: an add whose endpoint is freed by a change that is
    deferred (a copy a moved device left, waiting for its new Zap; a removal whose Zap or
    cloud could not be read) is deferred with it, and one freed by a change blocked is
    blocked: sent, the Zap would refuse it (409), the device there being there still.
    What waits on such an add (its cloud record, its publishing flags) waits with it."""
    held: dict[str, Change] = {}  # the adds deferred or blocked here, by address
    for wait in waits:
        add, frees = wait.add, wait.frees
        if add.blocked or add.action is Action.DEFER:
            continue
        if frees.blocked:
            block(add, frees)
        elif frees.action is Action.DEFER:
            defer(add, f"added once {frees.address} frees {wait.endpoint.described()}, and "
                  f"{frees.address} is deferred", unread=False)
        else:
            continue
        held[add.address] = add
    grew = bool(held)
    while grew:
        grew = False
        for change in changes:
            if change.blocked or change.action is Action.DEFER or not change.is_change:
                continue
            cause = next((held[d] for d in change.depends_on if d in held), None)
            if cause is None:
                continue
            if cause.blocked:
                block(change, cause)
            else:
                defer(change, f"it goes after {cause.address}, deferred", unread=False)
            held[change.address] = change
            grew = True


def _endpoint(device: ZapDevice) -> zap_endpoints.Endpoint | None:
    return zap_endpoints.of_zap_settings(device.connection_type, device.profile, device.settings)


def _frees(change: Change, endpoint: zap_endpoints.Endpoint, fleet: Fleet) -> bool:
    """Whether `change` takes its device off `endpoint`: a removal does; a replace does
    when it adds the device again elsewhere (a new password alone adds it back there)."""
    # A change deferred already frees it as what it would do: the add waits with it
    # (`after_frees`), rather than being refused for a device that is on its way out.
    action = change.deferred_action if change.action is Action.DEFER else change.action
    if action is Action.DELETE:
        return True
    if action is not Action.REPLACE:
        return False
    device = fleet.devices.get(change.name)
    connection = device.spec.connection if device is not None else None
    return connection is not None and zap_endpoints.of_connection(connection) != endpoint


def _block_trades(waits: dict[str, Change]) -> dict[str, Change]:
    """Block the replaces that wait, through one another, on themselves: the Zap has no
    way to swap two devices' endpoints, as each replace removes its device and adds it
    again in one go while the other still holds the endpoint. Returns those blocked."""
    blocked: dict[str, Change] = {}
    for address in list(waits):
        seen = [address]
        step = waits.get(address)
        while step is not None and step.address not in seen:
            seen.append(step.address)
            step = waits.get(step.address)
        if step is None or step.address != address:
            continue
        cycle = [waits[a] for a in seen]  # each one is the change the one before waits for
        for change in cycle:
            if change.blocked:
                continue
            change.blocked = True
            change.message = (
                f"the Zap cannot trade endpoints between devices ({', '.join(seen)} would "
                "each wait for the next to move away); nothing is changed. Move one of them "
                "to a free endpoint first, apply, then declare the endpoints wanted"
            )
            blocked[change.address] = change
    return blocked


def _block_dependents(
    changes: Sequence[Change], waits: dict[str, Change], newly: dict[str, Change], block: Block
) -> None:
    """Block what waits on an add blocked here (its cloud record, its publishing flags),
    and the adds that wait for an endpoint a blocked change was to free; in the order the
    changes were planned, again until none is left (an add may wait on one planned after
    it)."""
    grew = True
    while grew:
        grew = False
        for change in changes:
            if change.blocked or not change.is_change:
                continue
            frees = waits.get(change.address)
            cause = frees if frees is not None and frees.blocked else next(
                (newly[d] for d in change.depends_on if d in newly), None
            )
            if cause is not None:
                block(change, cause)
                newly[change.address] = change
                grew = True


def clash_message(
    gateway: str, device: Device, endpoint: zap_endpoints.Endpoint, held: ZapDevice,
    fleet: Fleet, audience: Audience,
) -> str:
    """Why the add of `device` is blocked, `held` being at its `endpoint` on `gateway`
    already: which device that is (the Device declaring it there, or none), and what to
    change."""
    owner = next(
        (d.name for d in fleet.devices_of(gateway)
         if d.name != device.name and d.spec.hardware_id == held.sn),
        None,
    )
    whose = (f"declared by Device {owner}" if owner is not None
             else "which no Device declares on it")
    field = "`" + ".".join(endpoint.field[1:]) + "`"
    refuses = "the Zap refuses (409) to add a second device there"
    if endpoint.type == "mqtt":
        refuses = (
            f"the Zap names an MQTT device after its broker and profile, not after "
            f"`hardwareId` {device.spec.hardware_id!r}, and refuses (409) to add a second "
            "one there"
        )
    if owner is not None:
        fix = f"Remove one of the two Devices, or change {field} of this one"
    else:
        fix = (
            f"Correct `hardwareId` to {quoted(held.sn)} if it is that device; if it is "
            f"another, change {field} of this one, or remove {quoted(held.sn)} from the Zap "
            f"({_REMOVES_UNDECLARED.to(audience)})"
        )
    if held.device_type:
        whose = f"{printable(held.device_type)}, {whose}"
    return (
        f"gateway {gateway} already has device {quoted(held.sn)} ({whose}) at "
        f"{endpoint.described()}: {refuses}; nothing is added. {fix}"
    )
