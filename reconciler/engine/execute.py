"""Executors: carry out one planned change against the providers. Every external write
goes through `_write`, which journals the intent just before the write is sent and the
outcome after. Executors are idempotent (creating what exists or deleting what is gone
succeeds), so a change can be retried whole, and a run killed at any point can simply be
run again."""

from __future__ import annotations

import asyncio
import functools
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, TypeVar

from reconciler.engine import admission
from reconciler.engine.config import SecretResolver
from reconciler.engine.credentials import CredentialLedger, device_key
from reconciler.engine.observe import read_device_serial
from reconciler.engine.session import Session
from reconciler.engine.state import Journal
from reconciler.errors import ProviderConflict, ProviderRejected
from reconciler.model.device import Device
from reconciler.model.fleet import Fleet
from reconciler.model.gateway import Gateway
from reconciler.plan.actions import Action, Change
from reconciler.plan.advice import Audience
from reconciler.plan.device_gateways import gateway_of_change
from reconciler.plan.observed import NovacoreSite
from reconciler.plan.zap_settings import zap_settings
from reconciler.printable import echo, printable, quoted
from reconciler.providers.novacore import convert as novacore_convert
from reconciler.providers.novacore.client import NovacoreClient
from reconciler.providers.zap import convert as zap_convert
from reconciler.providers.zap.client import ZapClient

T = TypeVar("T")
Executor = Callable[["Executors", Change], Awaitable[dict[str, Any]]]

# Other platforms register executors by (kind, component); they receive the same context.
EXTRA_EXECUTORS: dict[tuple[str, str], Executor] = {}


class Executors:
    """Context shared by the executors of one apply."""

    def __init__(
        self,
        fleet: Fleet,
        session: Session,
        secrets: SecretResolver,
        journal: Journal | None,
        site_ids: dict[str, str],
        credentials: CredentialLedger | None = None,
        retired_gateways: Iterable[Gateway | None] = (),
        whole_fleet: Fleet | None = None,
        *,
        audience: Audience,
    ) -> None:
        self.fleet = fleet
        # The declared fleet `fleet` is part of (the operator applies an object's closure
        # of its namespace): a config file that any of its Devices names is that Device's,
        # and is never removed (`engine.enapter_files.remove`).
        self.whole_fleet = whole_fleet if whole_fleet is not None else fleet
        # Who reads what the apply says (the CLI's user or the operator's): its advice is
        # worded for them (`plan.advice`).
        self.audience = audience
        # Gateways declared no more whose Zap the plan removes moved devices' copies from
        # before releasing them (`plan.retired_gateways`), by name.
        self.retired_gateways = {g.name: g for g in retired_gateways if g is not None}
        self.session = session
        self.secrets = secrets
        self.journal = journal
        # Where the MQTT passwords sent to Zaps are recorded (None: nowhere).
        self.credentials = credentials
        # Site resource name -> Novacore site id (observed, or created during this apply).
        self.site_ids = site_ids
        self.extra: dict[str, Any] = {}
        # Change address -> attempts so far (a retry may follow a write whose answer was lost).
        self.attempts: Counter[str] = Counter()
        self._listings: dict[str, Any] = {}
        self._listing_locks: dict[str, asyncio.Lock] = {}

    async def listing(self, key: str, read: Callable[[], Awaitable[T]], *, fresh: bool) -> T:
        """What `read()` answers, read once per apply under `key` (concurrent callers share
        the one read) and again when `fresh`. Creates look here for what exists already:
        made since the plan (while a person confirmed it), or by an attempt whose answer
        was lost (`fresh`, on a retry). Reading the whole list again for each object
        created made onboarding N objects read N² records."""
        lock = self._listing_locks.setdefault(key, asyncio.Lock())
        async with lock:
            if fresh or key not in self._listings:
                self._listings[key] = await read()
            return self._listings[key]  # type: ignore[no-any-return]

    def retrying(self, change: Change) -> bool:
        """Whether this run of the change follows a failed attempt of it."""
        return self.attempts[change.address] > 1

    async def _write(
        self,
        change: Change,
        operation: str,
        call: Callable[[], Awaitable[T]],
        *,
        over_http: bool = True,
    ) -> T:
        """Make one write. Its intent is journaled when its request is let out (see
        `engine.admission`), after waiting for a slot; a write withheld then (the apply is
        stopping) was never sent and is not journaled. `over_http=False`: a write made
        otherwise than through the session's HTTP clients, let out at once."""
        journal = self.journal

        def intent() -> None:
            if journal is not None:
                journal.intent(change.address, operation, action=change.action.value)

        with admission.writing(intent, over_http=over_http) as write:
            try:
                result = await call()
            except Exception as exc:
                if journal is not None and write.opened:
                    journal.failed(change.address, operation, str(exc)[:300])
                raise
        if journal is not None and write.opened:
            journal.done(change.address, operation)
        return result

    async def run(self, change: Change) -> dict[str, Any]:
        self.attempts[change.address] += 1
        key = (change.kind, change.component)
        if key in EXTRA_EXECUTORS:
            return await EXTRA_EXECUTORS[key](self, change)
        handler = _HANDLERS.get(key)
        if handler is None:
            raise ProviderRejected(
                f"no executor for {change.address} ({change.action})", address=change.address
            )
        return await handler(self, change)

    def device(self, change: Change) -> Device:
        return self.fleet.devices[change.name]

    async def zap(self, gateway: Gateway, change: Change) -> ZapClient:
        """The gateway's Zap, once what answers at its URL reports the declared serial.
        The URL is plain http on a local network, where an address can reach another Zap
        (a DHCP lease moved, a swapped unit still plugged in, a typo): that Zap's devices
        would otherwise be pruned as undeclared and this gateway's added to it. Read once
        per apply (`GET /api/crypto`), and again on a retry of the change."""
        zap = self.session.zap(gateway)
        crypto = await self.listing(
            f"zap.crypto:{gateway.name}", zap.crypto, fresh=self.retrying(change)
        )
        assert gateway.spec.zap is not None
        declared = gateway.spec.zap.serial
        reported = zap_convert.reported_serial(crypto)
        if reported != declared:
            raise ProviderRejected(
                f"{zap_convert.other_serial(zap.url, reported, declared)}: nothing is written "
                "to it. Check the gateway's URL or its declared serial",
                address=change.address,
            )
        return zap


# -- Novacore site ------------------------------------------------------------------------


async def _org_sites(client: NovacoreClient, org: str) -> list[NovacoreSite]:
    return novacore_convert.sites(await client.list_sites(org), org)


async def _site(ctx: Executors, change: Change) -> dict[str, Any]:
    site = ctx.fleet.sites[change.name]
    novacore = site.spec.novacore
    assert novacore is not None
    client = ctx.session.novacore
    if change.action is Action.CREATE:
        org = novacore.org_id
        existing = await ctx.listing(
            f"novacore.sites:{org}",
            lambda: _org_sites(client, org),
            fresh=ctx.retrying(change),
        )
        for candidate in existing:
            if candidate.name == site.spec.display_name:
                ctx.site_ids[site.name] = candidate.id
                return {"id": candidate.id, "adopted": True}
        created = await ctx._write(
            change,
            "novacore.create_site",
            lambda: client.create_site(
                novacore.org_id, site.spec.display_name, address=change.address
            ),
        )
        ctx.site_ids[site.name] = str(created["id"])
        # The listing is this apply's view: a later create of the same name adopts this one.
        existing.append(NovacoreSite(str(created["id"]), org, site.spec.display_name))
        return {"id": created["id"]}
    assert change.external_id is not None
    await ctx._write(
        change,
        "novacore.update_site",
        lambda: client.update_site(
            change.external_id or "", site.spec.display_name, address=change.address
        ),
    )
    return {"id": change.external_id}


# -- gateway claim / transfer / release ---------------------------------------------------


async def _gateway(ctx: Executors, change: Change) -> dict[str, Any]:
    client = ctx.session.novacore
    if change.action is Action.RELEASE:
        serial = change.external_id or change.name
        await ctx._write(
            change,
            "novacore.release_gateway",
            lambda: client.release_gateway(serial, address=change.address),
        )
        return {"serial": serial}
    # Imported for a claim only: the signature check's cryptography is some 25 ms of every
    # command's start otherwise, and most runs claim nothing.
    from reconciler.providers.zap.claim import claim_problem, novacore_form

    gateway = ctx.fleet.gateways[change.name]
    zap_spec = gateway.spec.zap
    assert zap_spec is not None and change.after is not None
    zap = await ctx.zap(gateway, change)
    crypto = await ctx.listing(f"zap.crypto:{gateway.name}", zap.crypto, fresh=False)
    claimer = ctx.session.settings.claimer_identity()
    if not claimer:
        raise ProviderRejected(
            "no claimer identity: set RECONCILER_NOVACORE_IDENTITY or use a "
            "token that carries identity_id",
            address=change.address,
        )
    # The firmware appends |nonce|timestamp|serial itself and rejects '|' in the message.
    signed = await ctx._write(change, "zap.sign", lambda: zap.sign(claimer))
    # Checked here, not left to Novacore: the gateway answers over plain http, and a claim
    # that is not the gateway's own signature of this claim is not sent with our token.
    problem = claim_problem(
        message=signed.get("message"), signature=signed.get("sign"),
        public_key=crypto.get("publicKey"), claimer=claimer, serial=zap_spec.serial,
    )
    if problem is not None:
        raise ProviderRejected(
            f"the gateway at {zap.url} answered a claim that does not hold: {problem}; "
            "not claimed. Check that the gateway's URL reaches this Zap",
            address=change.address,
        )
    public_key, signature = novacore_form(
        message=signed["message"], signature=signed["sign"], public_key=crypto["publicKey"]
    )
    body = {
        "org_id": change.after["org_id"],
        "gateway_serial": zap_spec.serial,
        "public_key": public_key,
        "message": signed["message"],
        "signature": signature,
    }
    answer = await ctx._write(
        change, "novacore.claim_gateway", lambda: client.claim_gateway(body, address=change.address)
    )
    transferred = bool(answer.get("transferred"))
    result: dict[str, Any] = {
        "serial": zap_spec.serial,
        "org_id": change.after["org_id"],
        "transferred": transferred,
    }
    if transferred and change.action is Action.CLAIM:
        # The plan saw no owner (one in an organisation this token cannot read), and
        # Novacore took the claim for a transfer: done, and someone must know of it.
        previous = answer.get("previous_org_id")
        where = f"organisation {previous}" if previous else "an organisation"
        result["note"] = (
            f"Novacore transferred it from {where} this token cannot read, orphaning its "
            "devices there; the plan could not see that owner, so allowTransfer was not asked"
        )
    return result


# -- device on the Zap ----------------------------------------------------------------------


def _zap_body(ctx: Executors, device: Device) -> dict[str, Any]:
    connection = device.spec.connection
    assert connection is not None
    body = zap_settings(connection)
    mqtt = connection.mqtt
    if mqtt is not None and mqtt.password_from is not None:
        try:
            body["password"] = ctx.secrets.resolve(mqtt.password_from)
        except KeyError as exc:
            raise ProviderRejected(
                f"MQTT password {ctx.secrets.describe(mqtt.password_from)}: {exc.args[0]}"
            ) from None
    return body


async def _verify(ctx: Executors, change: Change) -> dict[str, Any]:
    device = ctx.device(change)
    serial = await read_device_serial(ctx.session, ctx.fleet, device)
    if serial != device.spec.hardware_id:
        raise ProviderRejected(
            f"the device reports serial {quoted(serial)}, not hardwareId "
            f"{device.spec.hardware_id!r}; not provisioned",
            address=change.address,
        )
    return {"serial": serial}


async def _zap_device(ctx: Executors, change: Change) -> dict[str, Any]:
    device = ctx.device(change) if change.name in ctx.fleet.devices else None
    gateway_name = gateway_of_change(ctx.fleet, change, ctx.retired_gateways)
    gateway = ctx.fleet.gateways.get(gateway_name) or ctx.retired_gateways[gateway_name]
    zap = await ctx.zap(gateway, change)
    if change.action in (Action.DELETE, Action.REPLACE):
        sn = change.external_id or ""
        await ctx._write(change, "zap.delete_device", lambda: zap.delete_device(sn))
        if change.action is Action.DELETE:
            return {"sn": sn}
    assert device is not None
    expected = device.spec.hardware_id
    body = _zap_body(ctx, device)
    try:
        answer = await ctx._write(change, "zap.add_device", lambda: zap.add_device(body))
    except ProviderConflict:
        # Added by an earlier, interrupted attempt? Then this is done; otherwise it is a clash.
        state = zap_convert.zap_state(await zap.devices())
        if expected in state.devices:
            _record_password(ctx, gateway_name, expected or "", body)
            return {"sn": expected, "adopted": True}
        raise
    sn = str(answer.get("sn", ""))
    if sn != expected:
        # The Zap read another serial from the device: do not leave the wrong device behind.
        await ctx._write(change, "zap.delete_device", lambda: zap.delete_device(sn))
        raise ProviderRejected(
            f"gateway {gateway_name} read serial {sn!r} from the device, not "
            f"hardwareId {expected!r}; removed it again",
            address=change.address,
        )
    _record_password(ctx, gateway_name, sn, body)
    return {"sn": sn}


def _record_password(ctx: Executors, gateway_name: str, sn: str, body: dict[str, Any]) -> None:
    password = body.get("password")
    zap_spec = ctx.fleet.gateways[gateway_name].spec.zap
    if ctx.credentials is not None and password is not None and zap_spec is not None:
        ctx.credentials.record(device_key(zap_spec.serial, sn), password)


async def _publish(ctx: Executors, change: Change) -> dict[str, Any]:
    device = ctx.device(change)
    zap = await ctx.zap(ctx.fleet.gateways[device.spec.gateway_ref or ""], change)
    flags = dict(change.after or {})
    sn = device.spec.hardware_id or ""
    await ctx._write(
        change, "zap.set_types", lambda: zap.set_types(sn, zap_convert.types_body(flags))
    )
    return {"sn": sn, "ders": flags}


# -- device in Novacore ---------------------------------------------------------------------


async def _novacore_device(ctx: Executors, change: Change) -> dict[str, Any]:
    client = ctx.session.novacore
    if change.action is Action.REPLACE and _changes_org(change):
        return await _replace_into_org(ctx, change)
    if change.action in (Action.DELETE, Action.REPLACE):
        device_id = change.external_id or ""
        await ctx._write(
            change,
            "novacore.delete_device",
            lambda: client.delete_device(device_id, address=change.address),
        )
        if change.action is Action.DELETE:
            return {"id": device_id}
    fields = dict(change.after or {})
    body = _provision_body(ctx, change)
    if change.action is Action.UPDATE and change.external_id and not _needs_rebind(change):
        device_id = change.external_id
        before = change.before or {}
        update: dict[str, Any] = {
            k: fields[k]
            for k in ("name", "manufacturer", "model")
            if k in fields and before.get(k) != fields[k]
        }
        if update:
            await ctx._write(
                change,
                "novacore.update_device",
                lambda: client.update_device(device_id, update, address=change.address),
            )
        for name, der_type in fields.get("ders", {}).items():
            if name not in before.get("ders", {}):
                await _add_der(ctx, change, device_id, name, der_type)
        return {"id": device_id}
    return await _provision(ctx, change, body)


async def _add_der(
    ctx: Executors, change: Change, device_id: str, name: str, der_type: str
) -> None:
    """Add one DER. Novacore answers 409 for a name the device has: added by an earlier
    attempt whose answer was lost, or by someone since the plan. With the declared type it
    is done; with another type it is a clash the next plan replaces the device for."""
    client = ctx.session.novacore
    try:
        await ctx._write(
            change,
            "novacore.add_der",
            functools.partial(client.add_der, device_id, name, der_type, address=change.address),
        )
    except ProviderConflict:
        current = novacore_convert.devices([await client.get_device(device_id)])
        has = {der.name: der.type for device in current for der in device.ders}
        if has.get(name) == der_type:
            return
        if name not in has:
            raise
        raise ProviderConflict(
            f"Novacore device {device_id} has a DER {name!r} of type "
            f"{printable(echo(has[name], 40))}, not {der_type!r}; the next plan replaces "
            "the device",
            address=change.address,
            operation="novacore.add_der",
            status=409,
        ) from None


async def _provision(ctx: Executors, change: Change, body: dict[str, Any]) -> dict[str, Any]:
    client = ctx.session.novacore
    answer = await ctx._write(
        change, "novacore.provision", lambda: client.provision_device(body, address=change.address)
    )
    return {"id": answer.get("device_id"), "created": answer.get("created", True)}


def _provision_body(ctx: Executors, change: Change) -> dict[str, Any]:
    device = ctx.device(change)
    site_id = ctx.site_ids.get(change.site)
    if site_id is None:
        raise ProviderRejected(
            f"Novacore site of {change.site} is not known (was it created?)", address=change.address
        )
    gateway = ctx.fleet.gateways[device.spec.gateway_ref or ""]
    assert gateway.spec.zap is not None
    fields = dict(change.after or {})
    if change.action is Action.UPDATE:
        # Provisioned again to bind it (`_needs_rebind`): the DERs it has that nobody
        # declares are sent too. The plan reports them as left as they are, and whether
        # Novacore keeps the DERs a rebind's body leaves out is not documented.
        declared = fields.get("ders", {})
        kept = {
            n: t for n, t in (change.before or {}).get("ders", {}).items() if n not in declared
        }
        fields["ders"] = {**declared, **kept}
    return novacore_convert.provision_body(
        fields,
        gateway_serial=gateway.spec.zap.serial,
        hardware_id=device.spec.hardware_id or "",
        site_id=site_id,
    )


def _changes_org(change: Change) -> bool:
    """Whether the change moves a device to another organisation (`plan.moves`)."""
    before, after = change.before or {}, change.after or {}
    return bool(before.get("org_id")) and before.get("org_id") != after.get("org_id")


async def _replace_into_org(ctx: Executors, change: Change) -> dict[str, Any]:
    """A device moved to another organisation: provisioned there first (a new device), then
    the one it leaves deleted, so a failure in between leaves the hardware with a device
    (the next plan deletes the old one) instead of none. A retry provisions again, which
    answers the device made before (Novacore rebinds a hardware id on the same gateway)."""
    made = await _provision(ctx, change, _provision_body(ctx, change))
    old_id = change.external_id or ""
    if made["id"] != old_id:  # the same id: Novacore moved it after all; nothing to delete
        client = ctx.session.novacore
        await ctx._write(
            change,
            "novacore.delete_device",
            lambda: client.delete_device(old_id, address=change.address),
        )
    return made


def _needs_rebind(change: Change) -> bool:
    """Whether the device is bound again by provisioning it, which Novacore does for a
    hardware id it has: an orphaned device (its gateway left the organisation), or one that
    moves to another gateway or site (`plan.moves`); PUT /devices/{id} changes neither."""
    before, after = change.before or {}, change.after or {}
    if before.get("state") == "orphaned":
        return True
    return any(before.get(key) != after.get(key) for key in ("gateway_serial", "site"))


_HANDLERS: dict[tuple[str, str], Executor] = {
    ("Site", "novacore"): _site,
    ("Gateway", "novacore"): _gateway,
    ("Device", "identity"): _verify,
    ("Device", "zap"): _zap_device,
    ("Device", "publish"): _publish,
    ("Device", "novacore"): _novacore_device,
}
