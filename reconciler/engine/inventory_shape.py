"""Whether the inventory's JSON (`StateDir.read_inventory`) has the shape the reconciler
writes, or one an earlier version wrote.

An entry of another shape (a deletion policy of "Bogus" or ["Release"], a Site whose
site id is a list, a config file's record without its inode) is no record a run made:
the file was edited or damaged. Read as it was, it was left out or made text of
(`str(["Release"])`), so a gateway's policy or a Site's site was forgotten, or compared
as nonsense, without a word, and the next apply wrote the file over. `problem` says
where the first such entry is and what it holds instead, for the run to stop on as on
any damaged state file.

The shapes of earlier versions stay valid: any section missing (each was added by a
later version), a Flatpeak location without its account, a config file's record keyed
by its device's id without `device_id`, `deleting` or `replacing`, a pending config
file recorded with its identity at the top instead of `tmp`, `owner` and `written`, and
the fields declared recorded per resource instead of in groups. Keys the reconciler does
not know are left alone.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from reconciler.model.gateway import DeletionPolicy
from reconciler.printable import echo

# What a field must be, said as a problem names it: its test and its name.
_Kind = tuple[Callable[[object], bool], str]
_TEXT: _Kind = (lambda value: isinstance(value, str), "text")
# JSON's true and false are Python ints too: a count is never one.
_WHOLE: _Kind = (lambda value: isinstance(value, int) and not isinstance(value, bool),
                 "a whole number")
_SWITCH: _Kind = (lambda value: isinstance(value, bool), "true or false")
_TEXTS: _Kind = (lambda value: isinstance(value, list) and all(isinstance(v, str) for v in value),
                 "a list of text")

# Each kind of record: its fields, required and optional, by what each must be.
_Fields = tuple[Mapping[str, _Kind], Mapping[str, _Kind]]
_SITE: _Fields = ({"org": _TEXT, "id": _TEXT}, {})
_LEFT_SITE: _Fields = ({"site": _TEXT, "org": _TEXT, "id": _TEXT}, {})
_ZAP: _Fields = ({"gateway": _TEXT, "site": _TEXT, "url": _TEXT}, {})
_LOCATION: _Fields = ({"site": _TEXT}, {"account_sha256": _TEXT})
_ENAPTER_SITE: _Fields = ({"site": _TEXT}, {})
_IDENTITY = {"path": _TEXT, "inode": _WHOLE, "mtime_ns": _WHOLE, "size": _WHOLE}
# `deleting` is null where the delete was of a Device whose Site was gone (the operator's
# release), read as not marked, as it always was.
_TEXT_OR_NULL: _Kind = (lambda value: value is None or isinstance(value, str), "text or null")
_WRITTEN_EXTRA = {"deleting": _TEXT_OR_NULL, "replacing": _SWITCH}
# Keyed by its device's id before a device could have several: no `device_id` then.
_WRITTEN: _Fields = (_IDENTITY, {"device_id": _TEXT, **_WRITTEN_EXTRA})
# A pending config file before `tmp` was recorded: the identity at the top.
_PENDING_BEFORE_TMP: _Fields = ({**_IDENTITY, "device_id": _TEXT}, _WRITTEN_EXTRA)
_PENDING: _Fields = ({"tmp": _TEXT, "path": _TEXT, "device_id": _TEXT, "owner": _TEXT}, {})
_GROUP: _Fields = ({"fields": _TEXTS, "resources": _TEXTS}, {})
# The fields declared, per resource, before they were grouped (read as no record).
_DECLARED_BEFORE_GROUPS: _Fields = ({"fields": _TEXTS}, {})

_POLICIES = sorted(policy.value for policy in DeletionPolicy)


def problem(data: Mapping[str, Any]) -> str | None:
    """Where the first entry of `data` (the inventory, an object of objects) not of a shape
    the reconciler writes or wrote is, and what is wrong with it; None when there is none."""
    for serial, policy in data.get("gateways", {}).items():
        if policy not in _POLICIES:
            return (f"gateways[{echo(serial)}] is {echo(policy)}, not a deletion policy "
                    f"({' or '.join(_POLICIES)})")
    for serial, org in data.get("orgs", {}).items():
        if not isinstance(org, str):
            return f"orgs[{echo(serial)}] is {echo(org)}, not an organisation id (text)"
    for section, shape in (("sites", _SITE), ("left_sites", _LEFT_SITE), ("zaps", _ZAP),
                           ("flatpeak_locations", _LOCATION), ("enapter_sites", _ENAPTER_SITE),
                           ("enapter_config_files", _WRITTEN)):
        for key, entry in data.get(section, {}).items():
            if (wrong := _record(f"{section}[{echo(key)}]", entry, shape)) is not None:
                return wrong
    for key, entry in data.get("enapter_config_files_pending", {}).items():
        if (wrong := _pending(f"enapter_config_files_pending[{echo(key)}]", entry)) is not None:
            return wrong
    return _declared(data.get("declared_fields", {}))


def _pending(where: str, entry: object) -> str | None:
    """A pending config file's record, of either shape (`_PENDING`, `_PENDING_BEFORE_TMP`)."""
    if not isinstance(entry, dict) or "tmp" not in entry:
        return _record(where, entry, _PENDING_BEFORE_TMP)
    if (wrong := _record(where, entry, _PENDING)) is not None:
        return wrong
    written = entry.get("written")
    return None if written is None else _record(f"{where}['written']", written, _WRITTEN)


def _declared(record: Mapping[str, Any]) -> str | None:
    """The fields declared: in groups, or per resource as before they were grouped."""
    if "groups" not in record:
        for address, entry in record.items():
            where = f"declared_fields[{echo(address)}]"
            if (wrong := _record(where, entry, _DECLARED_BEFORE_GROUPS)) is not None:
                return wrong
        return None
    groups = record["groups"]
    if not isinstance(groups, list):
        return f"declared_fields['groups'] is {echo(groups)}, not a list"
    for index, group in enumerate(groups):
        if (wrong := _record(f"declared_fields['groups'][{index}]", group, _GROUP)) is not None:
            return wrong
    return None


def _record(where: str, entry: object, shape: _Fields) -> str | None:
    """What is wrong with the record `entry` at `where`, of `shape`, or None."""
    if not isinstance(entry, dict):
        return f"{where} is {echo(entry)}, not an object"
    required, optional = shape
    for name in required:
        if name not in entry:
            return f"{where} has no {echo(name)}"
    for name, (test, kind) in {**required, **optional}.items():
        if name in entry and not test(entry[name]):
            return f"{where}[{echo(name)}] is {echo(entry[name])}, not {kind}"
    return None
