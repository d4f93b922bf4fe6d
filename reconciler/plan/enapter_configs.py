"""The communication config of an Enapter device, as the plan says what becomes of it: where
it is written (a file, or a Secret where this run can write one: `config_note`), whether the
declared output holds this device's config (`has_config`, `others_config`, `foreign_output`),
and the files earlier applies wrote for a device that an update, replace or delete removes
(`written_files` and the notes). Configs carry credentials: none is read here, only what the
observer recorded of them (`EnapterState.config_outputs`, `EnapterState.written_files`).
"""

from __future__ import annotations

from reconciler.model.device import Device
from reconciler.plan.enapter_fields import CONFIG_ON_PROVISION, NO_CONFIG, kind_of
from reconciler.plan.enapter_observed import EnapterDeviceState, EnapterState


def config_note(state: EnapterState | None, device: Device) -> str:
    """What happens to the communication config a create or regeneration issues."""
    enapter = device.spec.enapter
    assert enapter is not None
    output = enapter.config_output
    kind = kind_of(device)
    if output is None:
        if kind in CONFIG_ON_PROVISION:
            return "no configOutput: the communication config it returns is not kept"
        return "no communication config is requested (no configOutput)"
    if kind in NO_CONFIG:
        return "a Lua device has no communication config of its own; configOutput is ignored"
    if output.file is not None:
        return f"its communication config is written to {config_target(state, device)} (mode 0600)"
    if state is not None and state.secret_store:
        return f"its communication config is written to Secret {output.secret_name}"
    return (
        f"configOutput.secretName {output.secret_name!r} is written only by the operator; "
        "this run keeps no communication config (use configOutput.file with the CLI)"
    )


def config_target(state: EnapterState | None, device: Device) -> str:
    known = state.config_outputs.get(device.name) if state is not None else None
    if known is not None:
        return known.target
    enapter = device.spec.enapter
    assert enapter is not None and enapter.config_output is not None
    return str(enapter.config_output.file or enapter.config_output.secret_name)


def others_config(
    state: EnapterState | None, device: Device, remote: EnapterDeviceState
) -> str | None:
    """The other Enapter device the records say the device's config file was written
    for (one deleted since, or another device): the file holds no config of this one.
    A file no record names (written before records were kept, or by hand) is taken
    for the device's config."""
    presence = state.config_outputs.get(device.name) if state is not None else None
    if presence is None or not presence.present or presence.written_for == remote.id:
        return None
    return presence.written_for


def has_config(state: EnapterState | None, device: Device, remote: EnapterDeviceState) -> bool:
    """Whether the device's declared config output holds a config of it, as observed."""
    presence = state.config_outputs.get(device.name) if state is not None else None
    return (
        presence is not None
        and presence.present
        and not presence.foreign
        and others_config(state, device, remote) is None
    )


def foreign_output(state: EnapterState | None, device: Device) -> str | None:
    """Why the device's config is not written to its Secret (one the reconciler did
    not write, which may hold someone's credentials) or to its file (a directory), or
    None when it may be."""
    presence = state.config_outputs.get(device.name) if state is not None else None
    if presence is not None and presence.unusable is not None:
        return presence.unusable
    if presence is None or not presence.foreign:
        return None
    return (
        f"{presence.target} exists and was not written by the reconciler (the operator "
        "labels the Secrets it writes app.kubernetes.io/managed-by=energy-reconciler), so "
        "the communication config is not written over it: delete it, or name another "
        "Secret in configOutput.secretName"
    )


def written_files(state: EnapterState | None, device_id: str) -> list[str]:
    """The config files earlier applies wrote for the device that its delete, or its
    update, removes (`EnapterState.written_files`)."""
    return state.written_files.get(device_id, []) if state is not None else []


def superseded_file_note(state: EnapterState | None, device_id: str) -> str:
    """What writing the device's config to the file its Device declares now does to
    the file an earlier apply wrote it to (its configOutput.file changed since)."""
    paths = written_files(state, device_id)
    if not paths:
        return ""
    return (
        f"; once it is written, {listed(paths)}, {the(paths, 'file')} an earlier "
        f"apply wrote its config to, {is_are(paths)} removed"
    )


def unnamed_file_note(state: EnapterState | None, device: Device, device_id: str) -> str:
    """What an update does to the config file an earlier apply wrote for the device
    that its configOutput names no more, with no new config written elsewhere."""
    enapter = device.spec.enapter
    assert enapter is not None and state is not None
    output = enapter.config_output
    names = (
        f"its configOutput.file names {config_target(state, device)} now"
        if output is not None and output.file is not None
        else "its configOutput names no file now"
    )
    paths = written_files(state, device_id)
    return (
        f"{names}: {listed(paths)}, {the(paths, 'config file')} an earlier apply "
        f"wrote for it, {is_are(paths)} removed"
    )


def replaced_file_note(state: EnapterState | None, device_id: str) -> str:
    """What a replace does to the config files an earlier apply wrote for the device it
    deletes that its Device names no more (one it names is written anew)."""
    paths = written_files(state, device_id)
    if not paths:
        return ""
    return (
        f"; once it is provisioned again, {listed(paths)}, "
        f"{the(paths, 'config file')} an earlier apply wrote for the device it "
        f"replaces, {is_are(paths)} removed"
    )


def written_file_note(state: EnapterState | None, device_id: str) -> str:
    """What a delete does to the config files an earlier apply wrote for the device."""
    paths = written_files(state, device_id)
    if not paths:
        return ""
    return (
        f"; then {listed(paths)}, {the(paths, 'config file')} an earlier apply wrote "
        f"for it, {is_are(paths)} removed"
    )


def listed(paths: list[str]) -> str:
    """"a", "a and b", "a, b and c"."""
    return paths[0] if len(paths) == 1 else f"{', '.join(paths[:-1])} and {paths[-1]}"


def the(paths: list[str], noun: str) -> str:
    return f"the {noun}" if len(paths) == 1 else f"the {noun}s"


def is_are(paths: list[str]) -> str:
    return "is" if len(paths) == 1 else "are"
