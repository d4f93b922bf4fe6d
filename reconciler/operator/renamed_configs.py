"""The config a renamed Device wrote that the Device taking over its Enapter device does not
name (`configOutput` changed with the rename): what becomes of it, said in the old one's
`DeviceKept` event.

A config Secret goes, as the old one's finalizer leaves the device to the new one: it
holds the credentials of an Enapter device whose config the new one keeps where it says
(its own Secret or file, written by its reconcile), and nothing else is to use it. Only
one the operator can tell it wrote for that device: labelled as the reconciler's, and
annotated with the old Device, or with the Enapter device its status recorded (a Secret
passed down an earlier rename); only when no other Device names it now, and deleted as
read (`secrets.KubeSecrets`). Any other is left as it is, saying why: one the reconciler
did not write, or wrote for another device, or one another Device names; and every one
when the new Device names no config of its own (the Secret is then the only copy of the
device's config), or when the new one's Secret is one the reconciler did not write
(which it does not write over: the old one is then the only copy), or under
`deletionPolicy: Orphan` (nothing is released, and the
takeover is no business of the release). A delete that fails leaves it too, said, and
does not hold the old one's deletion: the new one waits while the old one is being
deleted, and a rename is not to wait for a Secret.

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

from reconciler.engine import enapter_files
from reconciler.engine.config import Settings
from reconciler.engine.enapter import ConfigSecretStore
from reconciler.engine.state import StateDirError
from reconciler.errors import ProviderError
from reconciler.model.device import Device
from reconciler.plan.advice import Audience
from reconciler.printable import echo


def config_output(device: Device) -> str | None:
    """Where `device`'s Enapter config is written, said: "Secret NAME" or "file PATH"."""
    output = device.config_output
    if output is None:
        return None
    if output.secret_name is not None:
        return f"Secret {echo(output.secret_name)}"
    return f"file {echo(output.file)}" if output.file is not None else None


async def config_left(
    device: Device,
    heir: Device,
    store: ConfigSecretStore | None,
    enapter_id: str | None,
    settings: Settings,
) -> str:
    """What is said, after the old Device's `DeviceKept` message, of the config it wrote
    that `heir` does not name: "" when there is none. `store`: the namespace's config
    Secrets (None: none is deleted); `enapter_id`: the Enapter device id `device`'s status
    recorded; `settings`: where the state directory, and so the inventory, is."""
    mine = config_output(device)
    theirs = config_output(heir)
    if mine is None or mine == theirs:
        return ""
    left = f"; the config {mine} written for this Device is left as it is"
    output = device.config_output
    if output is not None and output.file is not None:
        return _file_left(output.file, heir, settings, enapter_id, mine, theirs, left)
    name = device.config_secret_name
    if name is None or store is None:
        return f"{left}: delete it once nothing uses it"
    if theirs is None:
        return (f"{left}: Device {echo(heir.name)} names no configOutput, so it holds the "
                "only copy of the device's config; delete it once nothing uses it")
    try:
        found = await store.find(device, name)
        heirs = heir.config_secret_name
        # The new one's own Secret someone else wrote: its config cannot be written there
        # (`write` refuses), and this one would be the only copy left of it.
        blocked = heirs is not None and (await store.find(heir, heirs)).foreign
    except KeyError as exc:
        return f"{left}: {exc.args[0]}; delete it once nothing uses it"
    if not found.present:
        return ""
    if found.foreign:
        return f"{left}: it was not written by the reconciler"
    if blocked:
        return (f"{left}: Device {echo(heir.name)}'s {theirs} was not written by the "
                "reconciler, which does not write over it, so this one holds the only copy "
                "of the device's config; delete it once nothing uses it")
    if found.written_for is None or (
        found.device != device.name and found.written_for != enapter_id
    ):
        return f"{left}: it holds the config of another device"
    try:
        said = await store.remove(device, name, found.written_for)
    except ProviderError as exc:
        # Not the release's message: no later attempt comes, the old one goes now.
        why = (
            "the API server did not answer its delete" if exc.retryable
            else "its delete was refused (the chart grants it with rbac.writeConfigSecrets)"
        )
        return f"{left}: {why}; delete it once nothing uses it"
    if said is None:
        return ""  # deleted meanwhile
    if said.startswith("deleted "):
        return (f"; its config Secret {echo(name)}, which holds the credentials of Enapter "
                f"device {found.written_for}, is deleted: Device {echo(heir.name)} keeps the "
                f"device's config in its own {theirs}")
    return f"{left} ({said})"


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
    inventory records it, as it is now, as written for the device (see the module)."""
    path = enapter_files.config_path(settings, file)
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
               f"{writer}, is removed by Device {echo(heir.name)}'s reconcile")
    if theirs is None:
        return (f"{removed}, as the file of a Device whose configOutput names no file is: "
                f"Device {echo(heir.name)} names no configOutput")
    return f"{removed} once that one has written the device's config to its own {theirs}"
