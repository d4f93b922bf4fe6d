"""The config a renamed Device wrote that the Device taking over its Enapter device does not
name (`configOutput` changed with the rename): what becomes of it, said in the old one's
`DeviceKept` event.

A config Secret goes once the new one's config is written: it holds the credentials of
an Enapter device whose config the new one keeps where it says (its own Secret or file,
written by its reconcile), and nothing else is to use it. Written already (the new one,
an Enapter device's, reconciled while the old one was there), the old one's finalizer
deletes it as it leaves the device to the new one; else it leaves it to the new one
(`ConfigLeft.handed`, named on it with its `takes-over-from` annotation: `takeovers`),
whose reconcile deletes it once it has written its own (`hand_over`), before it removes
the annotation: deleted first, a failure of that write would leave the config nowhere.
The new one's reconcile that ends with no config of it written (its write refused for
good, or its configOutput edited meanwhile) leaves it, said on the new one; so does a
new one deleted before that reconcile came, but for one whose release deletes the
Enapter device, whose credentials the Secret holds: it goes with it (`left_by_the_heir`).
Only one the operator can tell it wrote for that device: labelled as the reconciler's, and
annotated with the old Device, or with the Enapter device its status recorded (a Secret
passed down an earlier rename); only when no other Device names it now, nor the new one
itself, edited to name it while its reconcile ran (read from the API server then: kopf
gives a handler's run no edit of its own object), and deleted as read
(`secrets.KubeSecrets`). Any other is left as it is, saying why: one the reconciler
did not write, or wrote for another device, or one another Device names; and every one
when the new Device names no config of its own (the Secret is then the only copy of the
device's config), or when the new one's Secret is one the reconciler did not write
(which it does not write over: the old one is then the only copy), or under
`deletionPolicy: Orphan` (nothing is released, and the takeover is no business of the
release). A delete that fails leaves it too, said, and
holds neither the old one's deletion (the new one waits while the old one is being
deleted, and a rename is not to wait for a Secret) nor the annotation's removal.

A config file (`configOutput.file`) is not removed here: the new one's reconcile removes
it, once the old one is gone, after it has written the device's config where it says
(`engine.enapter_files`: a file recorded as written for the device, still as written,
that no declared Device names goes with the update that writes the device's config
elsewhere, or with one whose configOutput names no file), as `apply` does with a renamed
Device in git. Removed here, before the new one's config is written, a failure of that
write would leave the config nowhere. What is said of it follows the inventory's record:
one with no record of the device's (written before records were kept, by hand, changed
since, or another device's), which the new one does not remove, is said to be left."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from reconciler.engine import enapter_files
from reconciler.engine.apply import Outcome
from reconciler.engine.config import Settings
from reconciler.engine.enapter import ConfigSecretStore
from reconciler.engine.state import StateDirError
from reconciler.errors import ProviderError
from reconciler.model.device import Device
from reconciler.plan.actions import address_of
from reconciler.plan.advice import Audience
from reconciler.plan.enapter_fields import COMPONENT
from reconciler.printable import echo


def config_output(device: Device) -> str | None:
    """Where `device`'s Enapter config is written, said: "Secret NAME" or "file PATH"."""
    output = device.config_output
    if output is None:
        return None
    if output.secret_name is not None:
        return f"Secret {echo(output.secret_name)}"
    return f"file {echo(output.file)}" if output.file is not None else None


@dataclass(frozen=True)
class ConfigLeft:
    """What becomes of the config a renamed Device wrote that the new one does not name:
    `said`, after the old one's `DeviceKept` message ("" when there is nothing to say);
    `handed`: the config Secret the new one deletes once it has written the device's
    config where it says (`hand_over`), "" when none is left to it; `unhanded`: said
    instead of `said` when the new one could not be told so (its annotation refused)."""

    said: str = ""
    handed: str = ""
    unhanded: str = ""


async def config_left(
    device: Device,
    heir: Device,
    store: ConfigSecretStore | None,
    enapter_id: str | None,
    settings: Settings,
) -> ConfigLeft:
    """What becomes of the config `device` wrote that `heir` does not name. `store`: the
    namespace's config Secrets (None: none is deleted); `enapter_id`: the Enapter device id
    `device`'s status recorded; `settings`: where the state directory, and so the
    inventory, is."""
    mine = config_output(device)
    theirs = config_output(heir)
    if mine is None or mine == theirs:
        return ConfigLeft()
    left = f"; the config {mine} written for this Device is left as it is"
    output = device.config_output
    if output is not None and output.file is not None:
        return ConfigLeft(_file_left(output.file, heir, settings, enapter_id, mine, theirs, left))
    name = device.config_secret_name
    if name is None or store is None:
        return ConfigLeft(f"{left}: delete it once nothing uses it")
    if theirs is None:
        return ConfigLeft(
            f"{left}: Device {echo(heir.name)} names no configOutput, so it holds the only "
            "copy of the device's config; delete it once nothing uses it")
    try:
        found = await store.find(device, name)
        heirs = heir.config_secret_name
        # The new one's own Secret someone else wrote: its config cannot be written there
        # (`write` refuses), and this one would be the only copy left of it.
        blocked = heirs is not None and (await store.find(heir, heirs)).foreign
    except KeyError as exc:
        return ConfigLeft(f"{left}: {exc.args[0]}; delete it once nothing uses it")
    if not found.present:
        return ConfigLeft()
    if found.foreign:
        return ConfigLeft(f"{left}: it was not written by the reconciler")
    if blocked:
        return ConfigLeft(
            f"{left}: the {theirs} of Device {echo(heir.name)} was not written by the reconciler, "
            "which does not write over it, so this one holds the only copy of the device's "
            "config; delete it once nothing uses it")
    if found.written_for is None or (
        found.device != device.name and found.written_for != enapter_id
    ):
        return ConfigLeft(f"{left}: it holds the config of another device")
    holds = (f"; its config Secret {echo(name)}, which holds the credentials of Enapter "
             f"device {found.written_for}, is deleted")
    try:
        written = await _written(heir, store, settings, found.written_for)
    except (KeyError, StateDirError):
        written = False  # not known to be written: left to the new one, which reads again
    if not written:
        # Deleted now, a failure of the new one's write would leave the config nowhere.
        return ConfigLeft(
            f"{holds} by Device {echo(heir.name)} once that one has written the device's "
            f"config to its own {theirs}", handed=name,
            unhanded=f"{left}: Device {echo(heir.name)} could not be told to delete it once "
                     "its own config is written; delete it once nothing uses it")
    said, failed = await _remove(device, name, found.written_for, store)
    if failed:
        return ConfigLeft(f"{left}: {failed}")
    if said is None:
        return ConfigLeft()  # deleted meanwhile
    if said.startswith("deleted "):
        return ConfigLeft(
            f"{holds}: Device {echo(heir.name)} keeps the device's config in its own {theirs}")
    return ConfigLeft(f"{left} ({said})")


async def hand_over(
    heir: Device | None,
    name: str,
    old: str,
    store: ConfigSecretStore,
    settings: Settings,
) -> tuple[str, str]:
    """Once `heir` (None: its spec is refused now) has reconciled with the Device `old` it
    took over from gone, and is done: delete the config Secret `name` that `old` left to
    it (`ConfigLeft.handed`), if its own config is written where it says, and the Secret
    is still one the reconciler wrote for an Enapter device and no other Device names now.
    What is said on the heir: an event's reason and message; ("", "") when nothing is to
    be said (gone already, or the heir names it itself: as planned with, or as declared
    now, `store.names`)."""
    left = _left(name, old)
    if heir is None:
        return _KEPT, f"{left}: its spec is refused; delete it once nothing uses it"
    if heir.config_secret_name == name or store.names(heir, name):
        # Its own: its config is written there, by this run or, edited to name it since
        # this run planned, by the edit's reconcile (deleted, it would be nowhere until then).
        return "", ""
    theirs = config_output(heir)
    try:
        found = await store.find(heir, name)
        if not found.present:
            return "", ""
        written = found.written_for is not None and not found.foreign and await _written(
            heir, store, settings, found.written_for)
    except (KeyError, StateDirError) as exc:
        why = exc.args[0] if isinstance(exc, KeyError) else str(exc)
        return _KEPT, f"{left}: {why}; delete it once nothing uses it"
    if found.foreign or found.written_for is None:
        return _KEPT, f"{left}: it holds no config the reconciler wrote for an Enapter device"
    if not written:
        where = f"its own {theirs}" if theirs is not None else "any configOutput"
        return _KEPT, (f"{left}: this Device's config of Enapter device {found.written_for} "
                       f"is not written to {where}, so it holds the only copy of it; "
                       "delete it once nothing uses it")
    return await _delete_left(heir, name, old, found.written_for, store,
                              f": this Device keeps the device's config in its own {theirs}")


# The reason of an event saying a config Secret is left as it is (as `left_secrets`').
_KEPT = "ConfigSecretKept"


def _left(name: str, old: str) -> str:
    """The start of what is said on a renamed Device's heir of the config Secret `name`
    that `old` left to it, left as it is."""
    return (f"the config Secret {echo(name)} that Device {echo(old)} wrote, which this one "
            "took over from, is left as it is")


async def left_by_the_heir(
    heir: Device | None,
    name: str,
    old: str,
    store: ConfigSecretStore,
    outcomes: Iterable[Outcome],
    enapter_id: str | None,
    taken_over_by: str,
) -> tuple[str, str]:
    """As `heir` (None: its spec is refused) goes, released, before `hand_over` came: what
    becomes of the config Secret `name` that `old` left to it, said on it as `hand_over`
    says it (reason, message; ("", "") when it is gone already). Its release deleted the
    Enapter device (a done delete among `outcomes`; `enapter_id` its recorded id): the
    Secret holds that device's credentials, and goes with it as the heir's own Secret does.
    Else it is left, said: the device is taken over by `taken_over_by` ("" when by none),
    or stays in Enapter, and the Secret may be the only copy of its config."""
    left = _left(name, old)
    if heir is not None:
        try:
            if not (await store.find(heir, name)).present:
                return "", ""  # gone already (an earlier attempt's)
        except KeyError as exc:
            return _KEPT, f"{left}: {exc.args[0]}; delete it once nothing uses it"
    address = address_of("Device", heir.name, COMPONENT) if heir is not None else ""
    released = any(
        o.address == address and o.action == "delete" and o.status == "done" for o in outcomes)
    if heir is None or enapter_id is None or not released:
        why = (f"Device {echo(taken_over_by)} takes its device over" if taken_over_by
               else "its Enapter device was not deleted with it")
        return _KEPT, (f"{left}: this Device goes before it has written its own config, "
                       f"and {why}; delete it once nothing uses it")
    return await _delete_left(heir, name, old, enapter_id, store, " with that device")


async def _delete_left(
    heir: Device, name: str, old: str, device_id: str, store: ConfigSecretStore, how: str
) -> tuple[str, str]:
    """Delete the config Secret `name` that `old` left to `heir`, written for Enapter
    device `device_id`: what is said of it on the heir (`how`: said after "is deleted")."""
    left = _left(name, old)
    said, failed = await _remove(heir, name, device_id, store)
    if failed:
        return _KEPT, f"{left}: {failed}"
    if said is None:
        return "", ""  # deleted meanwhile
    if said.startswith("deleted "):
        return "ConfigSecretDeleted", (
            f"the config Secret {echo(name)} that Device {echo(old)} wrote, which this one "
            f"took over from, holding the credentials of Enapter device {device_id}, is "
            f"deleted{how}")
    return _KEPT, f"{left} ({said})"


async def _written(
    heir: Device, store: ConfigSecretStore, settings: Settings, device_id: str
) -> bool:
    """Whether `heir`'s config of Enapter device `device_id` is written where it says: its
    Secret written by the reconciler for that device, or its file, recorded as written for
    it and unchanged since. Raises KeyError (a Secret not read) or StateDirError."""
    output = heir.config_output
    if output is None:
        return False
    if output.secret_name is not None:
        found = await store.find(heir, output.secret_name)
        return found.present and not found.foreign and found.written_for == device_id
    if output.file is None:
        return False
    path = enapter_files.config_path(settings, output.file)
    return enapter_files.written_for(settings, [path], Audience.OPERATOR).get(path) == device_id


async def _remove(
    device: Device, name: str, device_id: str, store: ConfigSecretStore
) -> tuple[str | None, str]:
    """Delete the config Secret `name` written for `device_id` (`ConfigSecretStore.remove`),
    on behalf of `device`: what happened, and why it failed ("" when it did not). A failure
    is said, not raised: no later attempt comes (the old one goes now, or its heir's
    annotation is removed)."""
    try:
        return await store.remove(device, name, device_id), ""
    except ProviderError as exc:
        why = (
            "the API server did not answer its delete" if exc.retryable
            else "its delete was refused (the chart grants it with rbac.writeConfigSecrets)"
        )
        return None, f"{why}; delete it once nothing uses it"


def _file_left(
    file: str,
    heir: Device,
    settings: Settings,
    enapter_id: str | None,
    mine: str,
    theirs: str | None,
    left: str,
) -> str:
    """What is said of the config file `file` the old Device wrote (`mine`, as said), which
    `heir` (its output `theirs`) does not name: removed by the heir's reconcile when the
    inventory records it, as it is now, as written for the device (see the module); ""
    when no file is there."""
    path = enapter_files.config_path(settings, file)
    try:
        path.lstat()
    except FileNotFoundError:
        # None there (removed with the Enapter device by a release that had begun, or never
        # written): nothing is left to say anything of, as of a Secret found absent.
        return ""
    except OSError:
        pass  # not known to be absent: the inventory's record says what it is
    try:
        writer = enapter_files.written_for(settings, [path], Audience.OPERATOR).get(path)
    except StateDirError as exc:
        return f"{left}: {exc}"
    if writer is None:
        return (f"{left}: the reconciler has no record of writing it as it is now (written "
                "before records were kept, by hand, or changed since); delete it once "
                "nothing uses it")
    if enapter_id is not None and writer != enapter_id:
        return f"{left}: it holds the config of another device"
    removed = (f"; its config {mine}, which holds the credentials of Enapter device "
               f"{writer}, is removed by the reconcile of Device {echo(heir.name)}")
    if theirs is None:
        return (f"{removed}, as the file of a Device whose configOutput names no file is: "
                f"Device {echo(heir.name)} names no configOutput")
    return f"{removed} once that one has written the device's config to its own {theirs}"
