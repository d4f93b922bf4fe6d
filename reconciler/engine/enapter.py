"""Enapter Cloud in the engine: its client on the session, the observer (one `GET v3/sites`
and one `GET v3/sites/{id}/devices` per declared site, every page of each; no other call in
a no-op plan) and the executors. `engine.platforms` registers them.

Communication configs (Enapter credentials: private keys, MQTT passwords) go only where
`configOutput` points, and nowhere else: not in the plan, the journal, the apply report or
a log line.

* `configOutput.file`: written atomically with mode 0600 (its directory is created with
  0700). A relative path is resolved against the state directory (RECONCILER_STATE_DIR,
  default `.reconciler`), not the working directory, so that credentials land next to the
  journal and outside the Git checkout of the site YAML. Whether the file exists is
  observed; a missing file makes the plan generate a new config and write it again.
  Validation refuses a relative path naming one of the state directory's own files
  (`reconciler.state_files`) or another device's file; before Enapter is asked for a
  config (provisioning or generate_config), the destination is checked again, resolved,
  so that an absolute path into the state directory, or one that cannot be written,
  fails the change with nothing asked of Enapter: a new config may invalidate the old one.
  A file that cannot be written now (its directory's mode, a read-only mount, a full
  disk: `FileNotWritten`), before or after the device was provisioned, is tried again by
  the next run, not within this one: provisioning again is not known to be harmless for
  every kind (nothing public says so of LINK devices), and the next run's plan finds the
  device made (by its hardware id or slug) and only generates its config and writes it.
  Each file written is recorded, and removed after its device is deleted, its config is
  written to another file, or its `configOutput` names no file any more (an update of the
  device); a file recorded as written for another Enapter device is not this device's
  config (`engine.enapter_files`).
* `configOutput.secretName`: Secrets are the operator's. It registers a `ConfigSecretStore`
  in `Session.extra[SECRET_STORE_KEY]`; without one (the CLI) the device is provisioned,
  no config is generated or kept, and the plan and apply messages say so. We chose this
  over failing the change because provisioning is the user's main intent and a config can
  be generated again at any time (`generate_config`), while a failure would leave the
  fleet never converging from the CLI. Validation refuses two Devices of a namespace naming
  one Secret. As with files, a Secret records the Enapter device it was written for (the
  store keeps it with the Secret): one written for another device holds no config of this
  one, and a config is generated and written again. A Secret the reconciler did not write
  is not written over: the change is blocked, saying so (`plan.enapter`). Once its device
  is deleted (the operator's `deletionPolicy: Release`), the Secret written for it holds
  credentials of nothing: the store deletes it, if the reconciler wrote it for that Device
  and that Enapter device and no other Device names it now (`ConfigSecretStore.remove`).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import stat
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, cast

from reconciler.engine import enapter_files, execute, replaces_under_way
from reconciler.engine.config import Settings
from reconciler.engine.enapter_files import config_path
from reconciler.engine.execute import Executors
from reconciler.engine.fanout import all_of
from reconciler.engine.gather import Gather
from reconciler.engine.retry import RetryPolicy
from reconciler.engine.session import Session
from reconciler.engine.state import StateNotWritten, write_temporary
from reconciler.errors import (
    FileNotRemoved,
    FileNotWritten,
    ProviderAuthError,
    ProviderConflict,
    ProviderRejected,
)
from reconciler.model.device import Device, EnapterKind
from reconciler.model.fleet import Fleet
from reconciler.model.site import Site
from reconciler.plan import enapter_fields, enapter_sites, renames
from reconciler.plan.actions import Action, Change
from reconciler.plan.advice import Advice, Audience
from reconciler.plan.enapter_observed import ConfigOutputState, EnapterState
from reconciler.plan.observed import Observed
from reconciler.providers.enapter import client as enapter_client
from reconciler.providers.enapter import convert as enapter_convert
from reconciler.providers.enapter.client import EnapterClient
from reconciler.sources import bounded
from reconciler.state_files import state_file_in

SECRET_STORE_KEY = "enapter.config_secrets"  # noqa: S105 - a dict key, not a secret
_ENAPTER = "enapter"
# The setting a wrong Enapter URL is blamed on (a listing every token has answered 404).
URL_SETTING = "RECONCILER_ENAPTER_URL"


@dataclass(frozen=True)
class StoredSecret:
    """What a config Secret's metadata says of it (never its data)."""

    present: bool
    # The Enapter device id it was written for, where the writer recorded one.
    written_for: str | None = None
    # Present, but not written by the reconciler: not to be written over.
    foreign: bool = False
    # The Device it was written for, where the writer recorded one.
    device: str | None = None


class ConfigSecretStore(Protocol):
    """Where the operator keeps `configOutput.secretName` configs (a Kubernetes Secret in
    the device's namespace). `data` maps keys to values; it holds credentials. `write`
    records `device_id`, the Enapter device the config is of, with it, and refuses
    (ProviderRejected) to write over a Secret the reconciler did not write. `names`: whether
    the device, as it is declared now, still names that Secret (a reconcile may have begun
    before an edit named another); `write` asks it again, and answers False for a Secret
    it left unwritten for that reason. `remove`, once Enapter device `device_id` is deleted:
    deletes the Secret if the reconciler wrote it for that Device and that Enapter device,
    and no other Device names it now; what happened, or None when there is no such Secret.
    Raises ProviderUnavailable when it may be tried again, ProviderRejected when not."""

    def names(self, device: Device, name: str) -> bool: ...

    async def remove(self, device: Device, name: str, device_id: str) -> str | None: ...

    async def find(self, device: Device, name: str) -> StoredSecret: ...

    async def write(
        self, device: Device, name: str, data: Mapping[str, str], device_id: str
    ) -> bool: ...


def enapter_api(session: Session) -> EnapterClient:
    client = session.extra.get(_ENAPTER)
    if not isinstance(client, EnapterClient):
        url = session.settings.enapter_url
        client = EnapterClient(
            session.http_client(
                url, headers=enapter_client.headers(session.settings.enapter_token, url),
                url_setting=URL_SETTING,
            )
        )
        session.extra[_ENAPTER] = client
    return client


def secret_store(session: Session) -> ConfigSecretStore | None:
    return cast("ConfigSecretStore | None", session.extra.get(SECRET_STORE_KEY))


def check_config_file(
    settings: Settings, device: Device, address: str, audience: Audience
) -> None:
    """Raise, naming the path, when the device's `configOutput.file` could not be written
    or must not be; called before Enapter is asked for a config, since a new one may
    invalidate the old. Nothing to check without a file output. ProviderRejected for what
    only another `configOutput.file` (or the file put there) cures; FileNotWritten, tried
    again by the next run (`audience` says which), for a directory that cannot be written
    now (its mode, a read-only mount), which may be put right without a change of spec."""
    output = device.config_output
    if output is None or output.file is None:
        return
    if enapter_fields.kind_of(device) in enapter_fields.NO_CONFIG:
        return
    path = config_path(settings, output.file)
    shown = enapter_files.shown_path(settings, output.file)
    problem = _unwritable(settings, path)
    if problem is not None:
        raise ProviderRejected(
            f"cannot write the communication config to {shown}: {problem}; Enapter Cloud "
            "was not asked for a config",
            address=address,
        )
    directory = _unwritable_directory(path)
    if directory is not None:
        raise FileNotWritten(
            f"cannot write the communication config to {shown}: the directory "
            f"{directory} is not writable; Enapter Cloud was not asked for a config"
            f"{_WRITE_AGAIN.to(audience)}"
        )


def _unwritable(settings: Settings, path: Path) -> str | None:
    """Why a config must not, or cannot ever, be written to `path` as declared, or None
    (`_unwritable_directory` says whether it can be now)."""
    # The file itself is replaced (os.replace), not followed if it is a link: resolve only
    # the directory it is in, and `..` after it, as the write will.
    target = Path(os.path.normpath(path.parent.resolve() / path.name))
    state = Path(settings.state_dir).resolve()  # literally, as `StateDir` takes it
    if target == state:
        return "it is the state directory (RECONCILER_STATE_DIR)"
    if target.is_relative_to(state):
        own = state_file_in(target.relative_to(state).parts)
        if own is not None:
            return (
                f"it is, or is under, the state directory's own {own}, which it would "
                "destroy; name another file in configOutput.file"
            )
    if target.is_dir():
        return "it is a directory"
    with contextlib.suppress(OSError):  # nothing there yet
        mode = os.lstat(target).st_mode
        # A link is replaced, as a file is; a FIFO, socket or device (/dev/null, written as
        # root) would be replaced by a file of credentials.
        if not (stat.S_ISREG(mode) or stat.S_ISLNK(mode)):
            return f"it is {bounded.NOT_REGULAR}; name a file in configOutput.file"
    parent = _nearest(target)
    if parent is not None and not parent.is_dir():
        return f"{parent} is not a directory"
    return None


def _unwritable_directory(path: Path) -> Path | None:
    """The directory that `path` would be written in (or made under) when this process
    cannot write there now, else None."""
    parent = _nearest(Path(os.path.normpath(path.parent.resolve() / path.name)))
    if parent is not None and parent.is_dir() and not os.access(parent, os.W_OK | os.X_OK):
        return parent
    return None


def _nearest(target: Path) -> Path | None:
    """The nearest of `target`'s parents that exists."""
    return next((parent for parent in target.parents if parent.exists()), None)


# -- observation ----------------------------------------------------------------------------


async def observe_enapter(
    fleet: Fleet,
    session: Session,
    observed: Observed,
    gather: Gather,
    whole_fleet: Fleet,
    audience: Audience,
) -> None:
    """Read the Enapter sites and devices of the fleet's Sites, and what the state
    directory recorded of the config files written for them (a damaged record said to
    `audience`)."""
    sites = [s for s in fleet.sites.values() if s.spec.enapter is not None]
    if not sites:
        return
    if not session.settings.enapter_token:
        gather.auth_errors.append(
            ProviderAuthError(
                "the fleet declares Enapter sites but RECONCILER_ENAPTER_TOKEN is not set",
                operation="enapter.list_sites",
            )
        )
        return
    client = enapter_api(session)
    # Every token has a site list: a 404 for it says the URL is wrong, which blocks.
    state = EnapterState(
        sites=await gather.read_as(client.list_sites, enapter_convert.sites, listing=URL_SETTING)
    )
    store = secret_store(session)
    state.secret_store = store is not None
    if isinstance(state.sites, list):
        devices = state.devices

        async def read_devices(site_id: str) -> None:
            devices[site_id] = await gather.read_as(
                lambda: client.site_devices(site_id), enapter_convert.devices
            )

        matches = {s.name: enapter_sites.match_site(s, state.sites) for s in sites}
        matched = {m.id for m in matches.values() if m is not None}
        await all_of(*(read_devices(i) for i in sorted(matched)))

        def look_elsewhere(site: Site) -> bool:
            # A Site that matches no site by name may have been renamed: its old site is
            # among those no declared Site claims. One whose site lacks a hardware id it
            # declares may find it there too, where provisioning it would fail (Enapter
            # keeps a hardware id in one site). Read only then: a no-op plan reads no more.
            match = matches[site.name]
            if match is None:
                return enapter_sites.needs_rename_search(whole_fleet, site)
            return enapter_sites.hardware_missing(whole_fleet, site, devices[match.id])

        if any(look_elsewhere(s) for s in sites):
            unclaimed = enapter_sites.unclaimed_sites(state.sites, whole_fleet.sites.values())
            state.unclaimed = tuple(s.id for s in unclaimed)
        searched = set(state.unclaimed) if len(state.unclaimed) <= renames.SEARCH_LIMIT else set()
        await all_of(*(read_devices(i) for i in sorted(searched - matched)))
    state.config_outputs = await _config_outputs(fleet, session, store, audience)
    found = [d.id for ds in state.devices.values() if isinstance(ds, list) for d in ds]
    if found:  # a delete the plan makes says which file it then removes
        state.written_files = enapter_files.removable(
            session.settings, whole_fleet, found, audience
        )
    state.interrupted_deletes = enapter_files.interrupted_deletes(
        session.settings, whole_fleet, audience
    )
    observed.extra[_ENAPTER] = state


async def observe_remembered_enapter_sites(
    session: Session, observed: Observed, policy: RetryPolicy, remembered: Collection[str]
) -> None:
    """List the Enapter sites when earlier applies made or matched some (`remembered`, from
    the inventory) and `observe_enapter` read nothing, no declared Site being in Enapter any
    more: the last one removed, or its block, leaves its site in Enapter, and only the
    listing lets the plan report it (`plan.retired_enapter_sites`). Read for that report
    alone, a failure (rejected credentials included) reports nothing and stops nothing,
    and no site's devices are read."""
    if not remembered or isinstance(observed.extra.get(_ENAPTER), EnapterState):
        return
    if not session.settings.enapter_token:
        return
    client = enapter_api(session)
    sites = await Gather(policy).read_as(client.list_sites, enapter_convert.sites)
    if isinstance(sites, list):
        observed.extra[_ENAPTER] = EnapterState(sites=sites)


async def _config_outputs(
    fleet: Fleet, session: Session, store: ConfigSecretStore | None, audience: Audience
) -> dict[str, ConfigOutputState]:
    """Whether each declared config output exists: a file (the one local file a plan
    looks at, with the Enapter device the records say it was written for), or a Secret
    where a store can tell."""
    out: dict[str, ConfigOutputState] = {}
    paths = {}
    for device in fleet.devices.values():
        output = device.config_output
        if output is not None and output.file is not None:
            paths[device.name] = config_path(session.settings, output.file)
    writers = (
        enapter_files.written_for(session.settings, paths.values(), audience) if paths else {}
    )
    for device in fleet.devices.values():
        output = device.config_output
        if output is None:
            continue
        if output.file is not None:
            path = paths[device.name]
            shown = enapter_files.shown_path(session.settings, output.file)
            out[device.name] = ConfigOutputState(
                shown,
                path.is_file(),
                writers.get(path),
                unusable=_unusable(path, shown, Path(output.file, f"{device.name}.json")),
            )
        elif store is not None and output.secret_name is not None:
            try:
                found = await store.find(device, output.secret_name)
            except Exception:  # noqa: S112 - unknown presence: the plan then leaves it alone
                continue
            out[device.name] = ConfigOutputState(
                f"Secret {output.secret_name}", found.present, found.written_for, found.foreign
            )
    return out


def _unusable(path: Path, shown: str, example: Path) -> str | None:
    """Why no config file can be written at `path`: a directory is there (as `secrets/`
    names). The plan blocks the change that would write it rather than call the file
    missing, and the apply then fail. A FIFO or device there is refused by the write
    (`_deliver_config`), which says so."""
    if not path.is_dir():
        return None
    return (
        f"configOutput.file names {shown}, which is a directory: name the file the "
        f"communication config is written to, e.g. '{example}'"
    )


# -- ids resolved during an apply -----------------------------------------------------------


class _Ids:
    """Remote ids an apply needs for creates: found again with a fresh read when they were
    not created by this apply (so a resumed run needs no local state), cached after."""

    def __init__(self) -> None:
        self.sites: dict[str, str] = {}  # Site name -> Enapter site id
        self.devices: dict[str, str] = {}  # Device name -> Enapter device id
        self.lock = asyncio.Lock()


def _ids(ctx: Executors) -> _Ids:
    ids = ctx.extra.get("enapter.ids")
    if not isinstance(ids, _Ids):
        ids = ctx.extra["enapter.ids"] = _Ids()
    return ids


async def _enapter_site_id(ctx: Executors, site: Site) -> str:
    assert site.spec.enapter is not None
    ids = _ids(ctx)
    if site.spec.enapter.site_id is not None:
        return site.spec.enapter.site_id
    async with ids.lock:
        if site.name not in ids.sites:
            sites = enapter_convert.sites(await enapter_api(ctx.session).list_sites())
            remote = enapter_sites.match_site(site, sites)
            if remote is None:
                raise ProviderRejected(
                    f"the Enapter site of {site.name} does not exist (was it created?)",
                    address=f"site/{site.name}[enapter]",
                )
            ids.sites[site.name] = remote.id
    return ids.sites[site.name]


async def _enapter_device_id(ctx: Executors, name: str) -> str:
    """The Enapter id of a declared device (a Lua device's runtime, a LINK slave's master)."""
    ids = _ids(ctx)
    if name in ids.devices:
        return ids.devices[name]
    device = ctx.fleet.devices[name]
    site = ctx.fleet.site_of_device(device)
    assert site is not None
    site_id = await _enapter_site_id(ctx, site)
    remote, _ = enapter_fields.find_device(
        device, enapter_convert.devices(await enapter_api(ctx.session).site_devices(site_id))
    )
    if remote is None:
        raise ProviderRejected(
            f"Device {name} is not provisioned in Enapter Cloud yet",
            address=f"device/{name}[enapter]",
        )
    ids.devices[name] = remote.id
    return remote.id


# -- executors ------------------------------------------------------------------------------


async def _enapter_site(ctx: Executors, change: Change) -> dict[str, Any]:
    site = ctx.fleet.sites[change.name]
    client = enapter_api(ctx.session)
    if change.action is Action.CREATE:
        # A site made since the plan, or by an attempt whose answer was lost, is adopted.
        sites = await ctx.listing(
            "enapter.sites", client.list_sites, fresh=ctx.retrying(change)
        )
        existing = enapter_sites.match_site(site, enapter_convert.sites(sites))
        if existing is not None:
            _ids(ctx).sites[site.name] = existing.id
            return {"id": existing.id, "adopted": True}
        created = await ctx._write(
            change,
            "enapter.create_site",
            lambda: client.create_site(
                enapter_convert.site_create_body(site), address=change.address
            ),
        )
        _ids(ctx).sites[site.name] = str(created["id"])
        return {"id": created["id"]}
    site_id = change.external_id or ""
    # Known now: devices created after this update (a renamed site) find it by id, not name.
    _ids(ctx).sites[site.name] = site_id
    body = enapter_convert.site_update_body(change.before or {}, change.after or {}, site)
    if body:
        await ctx._write(
            change,
            "enapter.update_site",
            lambda: client.update_site(site_id, body, address=change.address),
        )
    return {"id": site_id}


async def _enapter_gateway(ctx: Executors, change: Change) -> dict[str, Any]:
    gateway = ctx.fleet.gateways[change.name]
    site = ctx.fleet.sites[gateway.spec.site_ref]
    body = enapter_convert.gateway_body(gateway, site, await _enapter_site_id(ctx, site))
    client = enapter_api(ctx.session)
    # Provisioning an existing gateway again is how its firmware version is recorded. The
    # answer's config is dropped at once: a Gateway declares no output for it.
    answer = await ctx._write(
        change,
        "enapter.provision_gateway",
        lambda: client.provision("gateway", body, address=change.address),
    )
    return {"id": answer.get("gateway_device_id"), "config": "not kept"}


async def _enapter_device(ctx: Executors, change: Change) -> dict[str, Any]:
    if change.action is Action.REPLACE:
        return await _replace_enapter_device(ctx, change)
    if change.action is Action.DELETE:
        device_id = change.external_id or ""
        await _delete_enapter_device(ctx, change, device_id)
        removed = await _remove_config_file(ctx, change, device_id)
        return {"id": device_id} | removed | await _remove_config_secret(
            ctx, change, device_id)
    device = ctx.fleet.devices[change.name]
    if change.action is Action.UPDATE:
        return await _update_enapter_device(
            ctx, change, device, change.external_id or "", change.before or {}
        )
    return await _create_enapter_device(ctx, change, device)


async def _delete_enapter_device(ctx: Executors, change: Change, device_id: str) -> None:
    """Send the delete of Enapter device `device_id` (a delete's, or a replace's), the
    records of the files written for it marked first."""
    # Before the delete: killed once it took effect (a replace, before the device was
    # provisioned again and took over its files), this run leaves the device gone and
    # its files to the next plan (`enapter_files.interrupted_deletes`), but for the one
    # its Device still names, which the new device's config replaces. A replace's are
    # removed without --prune: the device was not deleted for want of a declaration.
    enapter_files.mark_deleting(ctx.session.settings, device_id, change.site, ctx.audience,
                                replacing=change.action is Action.REPLACE)
    client = enapter_api(ctx.session)
    await ctx._write(
        change,
        "enapter.delete_device",
        lambda: client.delete_device(device_id, address=change.address),
    )


async def _replace_enapter_device(ctx: Executors, change: Change) -> dict[str, Any]:
    """Delete the device and provision it again; the files written for the deleted one
    hold this Device's old credentials: once provisioned, the new device takes them over
    and removes those its configOutput does not name."""
    settings, old_id = ctx.session.settings, change.external_id or ""
    device = ctx.fleet.devices[change.name]
    # Under way until the new device took the files over: a Site's reconcile meanwhile
    # (the provisioning answered slowly, or retried) finds the device gone and its files
    # marked, and would take the replace for an interrupted one, removing them itself.
    with replaces_under_way.replacing(settings, old_id):
        await _delete_enapter_device(ctx, change, old_id)
        created = await _create_enapter_device(ctx, change, device)
        new_id = str(created["id"])
        enapter_files.adopt(settings, old_id, new_id, ctx.audience)
    return created | await _remove_config_file(ctx, change, new_id, device)


async def _create_enapter_device(ctx: Executors, change: Change, device: Device) -> dict[str, Any]:
    enapter = device.spec.enapter
    assert enapter is not None
    kind = enapter_fields.kind_of(device)
    site = ctx.fleet.site_of_device(device)
    assert site is not None
    site_id = await _enapter_site_id(ctx, site)
    upstream = enapter.runtime_ref or enapter.master_ref
    upstream_id = await _enapter_device_id(ctx, upstream) if upstream else None
    if kind is EnapterKind.LUA:
        # A Lua device cannot be provisioned again: look for one an interrupted run made.
        remotes = enapter_convert.devices(await enapter_api(ctx.session).site_devices(site_id))
        remote, _ = enapter_fields.find_device(device, remotes)
        if remote is not None and remote.upstream_id == upstream_id:
            _ids(ctx).devices[device.name] = remote.id
            before = {"name": remote.name, "slug": remote.slug, "blueprint_id": remote.blueprint_id}
            result = await _update_enapter_device(ctx, change, device, remote.id, before)
            return result | {"adopted": True}
    # Provisioning answers with a config: where it goes must take it, or it is lost.
    check_config_file(ctx.session.settings, device, change.address, ctx.audience)
    body = enapter_convert.provision_body(device, site_id=site_id, upstream_id=upstream_id)
    answer = await _provision(ctx, change, enapter_convert.ENDPOINT[kind], body)
    device_id = str(answer["device_id"])
    _ids(ctx).devices[device.name] = device_id
    client = enapter_api(ctx.session)
    # Enapter names the slug of a provisioned module after its name: set the declared one.
    if enapter.slug and answer.get("slug") != enapter.slug and kind is not EnapterKind.LUA:
        slug = enapter.slug
        await ctx._write(
            change,
            "enapter.update_device",
            lambda: client.update_device(device_id, {"slug": slug}, address=change.address),
        )
    if enapter.blueprint_id and kind is not EnapterKind.LUA:
        blueprint = enapter.blueprint_id
        await ctx._write(
            change,
            "enapter.assign_blueprint",
            lambda: client.assign_blueprint(device_id, blueprint, address=change.address),
        )
    config = answer.get("config")
    return {"id": device_id} | await _deliver_config(
        ctx, change, device, device_id, config if isinstance(config, dict) else None
    )


async def _provision(
    ctx: Executors, change: Change, endpoint: str, body: dict[str, Any]
) -> dict[str, Any]:
    """Provision; an earlier, interrupted run may have provisioned the device and someone
    renamed it since, which Enapter answers 409: align the name, then provision again
    (same arguments: the same device comes back, with its config)."""
    client = enapter_api(ctx.session)
    operation = f"enapter.provision_{endpoint}"
    try:
        return await ctx._write(
            change, operation, lambda: client.provision(endpoint, body, address=change.address)
        )
    except ProviderConflict as exc:
        errors = enapter_client.api_errors(exc)
        details = errors[0].get("details") if errors else None
        # What the 409 names is the server's: only a whole answer (an object naming just the
        # name as conflicting, and the device) is acted on; anything else stays a conflict.
        details = details if isinstance(details, dict) else {}
        fields = details.get("conflicting_fields")
        conflicts = set(fields) if isinstance(fields, list | dict) else set()
        existing = details.get("device_id")
        if (
            enapter_client.error_code(exc) != "DEVICE_ALREADY_EXISTS"
            or conflicts != {"name"}
            or not isinstance(existing, str)
            or not existing
        ):
            raise
        await ctx._write(
            change,
            "enapter.update_device",
            lambda: client.update_device(existing, {"name": body["name"]}, address=change.address),
        )
        return await ctx._write(
            change, operation, lambda: client.provision(endpoint, body, address=change.address)
        )


async def _update_enapter_device(
    ctx: Executors, change: Change, device: Device, device_id: str, before: dict[str, Any]
) -> dict[str, Any]:
    """Bring an existing device to the declared fields: PATCH for name and slug,
    assign_blueprint for the blueprint, generate_config for the protocol or a missing
    config output."""
    client = enapter_api(ctx.session)
    after = enapter_fields.device_fields(device)
    rename = enapter_convert.rename_body(before, after)
    if rename:
        await ctx._write(
            change,
            "enapter.update_device",
            lambda: client.update_device(device_id, rename, address=change.address),
        )
    blueprint = after.get("blueprint_id")
    if blueprint is not None and before.get("blueprint_id") != blueprint:
        await ctx._write(
            change,
            "enapter.assign_blueprint",
            lambda: client.assign_blueprint(device_id, blueprint, address=change.address),
        )
    protocol_changed = (
        "protocol" in before and "protocol" in after and before["protocol"] != after["protocol"]
    )
    output_missing = any(
        key in after and key not in before for key in ("config_file", "config_secret")
    )
    result: dict[str, Any] = {"id": device_id}
    if protocol_changed or output_missing:
        result |= await _deliver_config(ctx, change, device, device_id, None)
    return result | await _remove_config_file(ctx, change, device_id, device)


async def _deliver_config(
    ctx: Executors, change: Change, device: Device, device_id: str, config: dict[str, Any] | None
) -> dict[str, str]:
    """Write the device's communication config to its declared output, generating one
    when provisioning returned none. Returns what happened (`config`), never the config;
    the file written before, when the output moved, is removed after it
    (`_remove_config_file`)."""
    enapter = device.spec.enapter
    assert enapter is not None
    output = enapter.config_output
    store = secret_store(ctx.session)
    if output is None or enapter_fields.kind_of(device) in enapter_fields.NO_CONFIG:
        return {"config": "not kept (no configOutput)"}
    if output.file is None and store is None:
        return {
            "config": f"not kept (Secret {output.secret_name} is written by the operator only)"
        }
    if output.secret_name is not None and store is not None and not store.names(
        device, output.secret_name
    ):
        return _named_no_more(output.secret_name)
    if config is None:
        check_config_file(ctx.session.settings, device, change.address, ctx.audience)
        protocol = str(enapter.protocol)
        config = await ctx._write(
            change,
            "enapter.generate_config",
            lambda: enapter_api(ctx.session).generate_config(
                device_id, protocol, address=change.address
            ),
        )
    text = enapter_convert.config_text(config)
    if output.file is not None:
        settings = ctx.session.settings
        path = config_path(settings, output.file)
        # Named as the plan names it: relative to a relative state directory, the path
        # would not be the one the plan said it writes.
        shown = enapter_files.shown_path(settings, output.file)

        async def write() -> None:
            # Recorded before it is made, put in place and recorded at once, not after the
            # apply, in the event loop, not a thread (see `_remove_config_file`): a run
            # killed at any point leaves the file known as this device's, to be removed
            # when the device is deleted, and its temporary file known as the
            # reconciler's, to be removed by the next run (`enapter_files`).
            try:
                tmp = enapter_files.reserve(settings, device_id, path, ctx.audience)
            except (OSError, StateNotWritten) as exc:
                raise _unwritten(shown, exc, ctx.audience) from None
            # The descriptor holding the temporary file's lock (`enapter_files.hold`), let
            # go of once it is in place, or removed, or left for the next run.
            held: list[int] = []

            def let_go() -> None:
                while held:
                    os.close(held.pop())

            writing = asyncio.ensure_future(
                asyncio.to_thread(_write_private_file, path, tmp, text, held)
            )
            writing.add_done_callback(lambda done: done.cancelled() or done.exception())
            placed = False
            try:
                # Shielded: a thread goes on when its awaiter is cancelled (an interrupt).
                written = await asyncio.shield(writing)
                enapter_files.put(settings, device_id, written, path, ctx.audience)
                placed = True
            except (OSError, StateNotWritten) as exc:
                raise _unwritten(shown, exc, ctx.audience) from None
            finally:
                # Put in place: its pending record is its record (`enapter_files.put`).
                # Still being written (cancelled meanwhile): it stays recorded, for the
                # next run to remove. Not removable: recorded too, the next run tries again.
                # A record that cannot be forgotten (the state directory not writable) is
                # of a file gone, which the next apply's `clear_leftovers` forgets: the
                # failure said is the write's, not this one.
                if writing.done() and not placed:
                    with contextlib.suppress(OSError):
                        tmp.unlink(missing_ok=True)
                    with contextlib.suppress(StateNotWritten):
                        enapter_files.release(settings, tmp, ctx.audience)
                if writing.done():
                    let_go()
                else:
                    writing.add_done_callback(lambda _: let_go())

        await ctx._write(change, "enapter.write_config_file", write, over_http=False)
        return {"config": f"written to {shown}"}
    assert store is not None and output.secret_name is not None
    name = output.secret_name
    written = await ctx._write(
        change,
        "enapter.write_config_secret",
        lambda: store.write(device, name, {"config.json": text}, device_id),
        over_http=False,  # the operator's Kubernetes client, not the session's
    )
    return {"config": f"written to Secret {name}"} if written else _named_no_more(name)


def _named_no_more(name: str) -> dict[str, str]:
    """A config not generated nor written: the device, as declared now, names Secret
    `name` no more (edited, deleted, or another Device created under its name); the
    reconcile of its newest spec writes its config."""
    return {"config": f"not written (the device names Secret {name} no more: edited, deleted "
            "or created again)"}


# Who writes a config file whose write failed (a file-system error, no platform's refusal):
# the next run, which finds the device made and generates its config again.
_WRITE_AGAIN = Advice(cli="; the next apply tries again",
                      operator="; the next reconcile tries again")

# Who removes a config file whose removal failed: the CLI's next apply (with `--prune`
# after a device's delete that was no replace's), or the operator's next reconcile, which
# applies no plan the way `apply` does (`operator.interrupted_deletes`).
_AGAIN = Advice(cli=" (or the next apply tries again)",
                operator=" (or the next reconcile tries again)")
_PRUNE_AGAIN = Advice(cli=" (or the next apply with --prune tries again)",
                      operator=" (or the next reconcile tries again)")


async def _remove_config_file(
    ctx: Executors, change: Change, device_id: str, device: Device | None = None
) -> dict[str, str]:
    """After the device's delete, or its update (`device`, as declared now): remove the
    config files written for it that its `configOutput` does not name (every one after a
    delete), those still the ones written (`engine.enapter_files`). A file that cannot be
    removed fails the change: it holds the device's credentials, which someone must know
    of; its record is kept, so the next plan of a device still there removes it again. A
    failure of this host's, not a platform's refusal: the next run tries again, and the
    operator's retries, holding none of the device's writes back (`FileNotRemoved`)."""
    settings = ctx.session.settings
    output = device.config_output if device is not None else None
    own = config_path(settings, output.file) if output is not None and output.file else None
    if not enapter_files.recorded(settings, device_id, ctx.audience, own=own):
        return {}  # nothing to do: no write journaled

    async def remove() -> str | None:
        # In the event loop, not a thread: the inventory is read and written whole, and
        # another change's record or removal must not interleave with this one.
        try:
            return enapter_files.remove(
                settings, ctx.whole_fleet, device_id, ctx.audience, own=own
            )
        except OSError as exc:
            if device is None:
                what = "the device is deleted in Enapter Cloud, but its config file"
                # A replace's delete is finished by the next apply, a --prune's by a --prune.
                then = (_AGAIN if enapter_files.replacing(settings, device_id, ctx.audience)
                        else _PRUNE_AGAIN).to(ctx.audience)
            else:
                what = "the config file an earlier apply wrote for the device, which its "
                what += "configOutput names no more,"
                then = _AGAIN.to(ctx.audience)
            # No platform's refusal: tried again by the next run, not held (`errors`).
            raise FileNotRemoved(
                f"{what} {exc.filename} could not be removed: {exc.strerror or exc}; it "
                f"holds the device's credentials: remove it{then}"
            ) from None

    outcome = await ctx._write(change, "enapter.remove_config_file", remove, over_http=False)
    return {} if outcome is None else {"config_file": outcome}


async def _remove_config_secret(
    ctx: Executors, change: Change, device_id: str
) -> dict[str, str]:
    """After the delete of Enapter device `device_id` of a Device still declared (the
    operator's release of a Device being deleted): delete the Secret its
    `configOutput.secretName` names, which holds that device's credentials, when the store
    finds it written for both (`ConfigSecretStore.remove`). Nothing without a store (the
    CLI writes no Secret), or for a device no Device declares (a prune's delete)."""
    store = secret_store(ctx.session)
    device = ctx.fleet.devices.get(change.name)
    name = device.config_secret_name if device is not None else None
    if store is None or device is None or name is None:
        return {}
    outcome = await ctx._write(
        change,
        "enapter.remove_config_secret",
        lambda: store.remove(device, name, device_id),
        over_http=False,  # the operator's Kubernetes client, not the session's
    )
    return {} if outcome is None else {"config_secret": outcome}


def _write_private_file(path: Path, tmp: Path, text: str, held: list[int]) -> Path:
    """Write `text`, readable by the owner only (0600), to the temporary file `tmp` next
    to `path` that is then renamed onto it (`enapter_files.put`); that file, locked by the
    descriptor put in `held` (`enapter_files.hold`). Raises OSError when it cannot be."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    return write_temporary(
        path, text, private=True, tmp=tmp,
        opened=lambda descriptor: held.append(enapter_files.hold(descriptor)),
    )


def _unwritten(shown: str, exc: OSError | StateNotWritten, audience: Audience) -> FileNotWritten:
    """The failure of a config file's write, naming the file as the plan does (`shown`):
    its own (`exc` an OSError) or that of the state directory's record of it."""
    if isinstance(exc, StateNotWritten):
        why = (f"the state directory's record of the files it writes cannot be written "
               f"({exc.path}: {exc.reason})")
    else:
        why = exc.strerror or str(exc)
    return FileNotWritten(
        f"cannot write the communication config to {shown}: {why}{_WRITE_AGAIN.to(audience)}"
    )


EXECUTORS: dict[tuple[str, str], execute.Executor] = {
    ("Site", "enapter"): _enapter_site,
    ("Gateway", "enapter"): _enapter_gateway,
    ("Device", "enapter"): _enapter_device,
}
