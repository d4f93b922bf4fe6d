"""Fields a spec declared at the last apply and declares no more.

Only the fields a spec sets are compared (`plan.diff`): a value the API defaults is never
drift. Without a record of what was declared before, deleting a line from the YAML would
then be silent, and the remote would keep the old value for good. The state directory
records the field paths each apply declared (`model.declared`, `engine.state`); a field
in that record and not declared now is either set back to a default the API documents,
or, where there is no safe default, left as it is and reported as no longer managed.

Every optional spec field, and what its removal does:

Device
  connection.modbusTcp.port / unitId              reset: 502 / 1 (replace on the Zap)
  connection.modbusRtu.baudRate / unitId / parity /
      dataBits / stopBits                         reset: 9600 / 1 / none / 8 / 1 (replace)
  connection.p1Uart.profile / baudRate / dataBits /
      parity / stopBits                           reset: p1_meter / 115200 / 8 / none / 1
  connection.p1Uart.manufacturer,
  connection.mqtt.username / clientId             reset: none (added again without it)
  connection.mqtt.brokerPort                      reset: 1883 (replace)
  connection.mqtt.passwordFrom                    note: the Zap never reports a password,
                                                  so whether one is set cannot be seen
  displayName                                     compared always: metadata.name
  manufacturer / model                            note: Novacore refuses an empty one
  ders[].publish                                  compared always: true
  verification.*, deletionPolicy                  nothing remote: how the reconciler acts
  gatewayRef / siteRef / hardwareId / deviceType  identity and placement: planned as a
                                                  move or a replace already
  enapter.protocol                                compared always where it matters: MQTTS
  enapter.configOutput                            handled already: the file written is removed
  enapter.blueprintId / slug / embeddedType /
      runtimeRef / masterRef                      note: Enapter has no default to go back to
  flatpeak.manufacturer / modelCode / modelName /
      properties.*                                note: the PATCH leaves what it does not send
Site
  location.address.*                              a declared address is whole (a line left
                                                  out is removed); the whole block: note
  flatpeak.customerId                             note: the location keeps its customer
  location (whole), location.name                 note, of a Site in Enapter: the Enapter
                                                  site keeps its location (no default to
                                                  go back to; a name until the location is
                                                  sent again, named after the displayName);
                                                  nothing remote otherwise
  novacore.siteId, enapter.siteId,
      flatpeak.locationId                         nothing remote: names and ids matched by
Gateway
  zap.orgId                                       compared always: the Site's organisation
  zap.allowTransfer, deletionPolicy               nothing remote: how the reconciler acts

A field whose enclosing block is gone too (a connection of another type, a device no
longer on Flatpeak) is not reported field by field: the block's removal is planned or
reported as the object it is.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from reconciler.model.base import Resource

REASON_TEXT = "was declared at the last apply and is removed from the spec"

# Zap connection settings a removal sets back to the default the model sends (the one the
# Zap firmware documents): compared, so that the device is added again with it.
ZAP_DEFAULTED = frozenset({
    "connection.modbusTcp.port", "connection.modbusTcp.unitId",
    "connection.modbusRtu.baudRate", "connection.modbusRtu.unitId",
    "connection.modbusRtu.parity", "connection.modbusRtu.dataBits",
    "connection.modbusRtu.stopBits",
    "connection.p1Uart.profile", "connection.p1Uart.baudRate", "connection.p1Uart.dataBits",
    "connection.p1Uart.parity", "connection.p1Uart.stopBits",
    "connection.mqtt.brokerPort",
})
# Zap settings that exist only when given: removed, the device is added again without.
ZAP_UNSET = frozenset({
    "connection.p1Uart.manufacturer", "connection.mqtt.username", "connection.mqtt.clientId",
})

# Fields (or prefixes, ending in '.') left as they are when removed, by kind: the
# platform and why, as the note says.
_NOTED: dict[str, tuple[tuple[str, str, str], ...]] = {
    "Device": (
        ("connection.mqtt.passwordFrom.", "zap",
         "the Zap never reports a password, so whether the device keeps one cannot be seen"),
        ("manufacturer", "novacore", "Novacore refuses an empty value"),
        ("model", "novacore", "Novacore refuses an empty value"),
        ("enapter.blueprintId", "enapter", "Enapter has no default to go back to"),
        ("enapter.slug", "enapter", "Enapter has no default to go back to"),
        ("enapter.embeddedType", "enapter", "Enapter has no default to go back to"),
        ("enapter.runtimeRef", "enapter", "Enapter has no default to go back to"),
        ("enapter.masterRef", "enapter", "Enapter has no default to go back to"),
        ("flatpeak.manufacturer", "flatpeak", "Flatpeak keeps what an update does not send"),
        ("flatpeak.modelCode", "flatpeak", "Flatpeak keeps what an update does not send"),
        ("flatpeak.modelName", "flatpeak", "Flatpeak keeps what an update does not send"),
        ("flatpeak.properties.", "flatpeak", "Flatpeak keeps what an update does not send"),
    ),
    "Site": (
        ("location.address.", "flatpeak", "the Flatpeak location keeps its address"),
        ("flatpeak.customerId", "flatpeak", "the Flatpeak location keeps its customer"),
        ("location.name", "enapter", "the Enapter site keeps it until a changed "
         "coordinate sends the location again, named after the displayName"),
        ("location.", "enapter", "the Enapter site keeps its location"),
    ),
}
# Blocks that no object of their own stands for: removed whole, their fields are reported
# all the same (`notes` says the block once), there being no removal planned for them.
_BARE = ("location",)


# Blocks that stand for one value (a whole address, a password source, a set of
# properties): a field under one counts as removed while the block around it is declared.
_GROUPS = ("location.address.", "connection.mqtt.passwordFrom.", "flatpeak.properties.")
# Of those, the ones that are one value: reported only when removed whole. A Site's
# location is one value to Enapter too, which takes it whole.
_WHOLE = ("location.address.", "connection.mqtt.passwordFrom.", "location.")


def removed(last: Iterable[str] | None, now: Iterable[str]) -> list[str]:
    """The paths of `last` (the record of the last apply; None when there is none) that
    `now` does not declare, and whose enclosing block `now` still declares: a block
    removed whole (a connection of another type, a device no longer on Flatpeak) is the
    removal of what it stands for, planned or reported as such, not of each field."""
    declared = now if isinstance(now, frozenset) else frozenset(now)
    if not last or declared.issuperset(last):
        # Nothing declared before is gone: the common case, at each plan of every resource.
        return []
    blocks = {path.rsplit(".", i)[0] for path in declared for i in range(1, path.count(".") + 1)}
    out = []
    for path in sorted(set(last) - declared):
        anchor: str | None = path.rsplit(".", 1)[0] if "." in path else ""
        for group in _GROUPS:
            if path.startswith(group):
                anchor = group[:-1].rsplit(".", 1)[0]
                if group in _WHOLE and group[:-1] in blocks:
                    # Still declared, in other words: compared whole already.
                    anchor = None
        if anchor == "" or anchor in blocks or (
            anchor in _BARE and path.count(".") == 1 and not path.endswith(".name")
        ):
            # A bare block removed whole is said by its required fields, the name of a
            # location going with it.
            out.append(path)
    return out


def zap_removed(removed_paths: Iterable[str]) -> tuple[dict[str, str], dict[str, str]]:
    """Of `removed_paths`, the Zap settings set back to their default and those unset:
    each as the model field's name (snake_case, as `zap_settings` keys are) -> its path."""
    defaulted: dict[str, str] = {}
    unset: dict[str, str] = {}
    for path in removed_paths:
        field = _snake(path.rsplit(".", 1)[-1])
        if path in ZAP_DEFAULTED:
            defaulted[field] = path
        elif path in ZAP_UNSET:
            unset[field] = path
    return defaulted, unset


def _snake(name: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in name)


def notes(
    resource: Resource, removed_paths: Iterable[str], site: str
) -> list[dict[str, Any]]:
    """Unmanaged-object entries for the removed fields of `resource` that are left as they
    are: one per field (a grouped block, such as an address, once)."""
    rules = _NOTED.get(resource.KIND, ())
    out: list[dict[str, Any]] = []
    seen: set[str] = set()
    for path in removed_paths:
        for rule, platform, why in rules:
            if platform == "enapter" and getattr(resource.spec, "enapter", None) is None:
                # A Site's location is Enapter's only: elsewhere it is nothing remote.
                continue
            if path == rule or (rule.endswith(".") and path.startswith(rule)):
                # A property is a value of its own; an address or a password source is
                # one value, reported once.
                whole = rule in _WHOLE
                field = rule[:-1] if whole else path
                if field in seen:
                    break
                seen.add(field)
                entry: dict[str, Any] = {
                    "platform": platform,
                    "id": f"{resource.address}.spec.{field}",
                    "field": f"spec.{field}",
                    "description": f"spec.{field} of {resource.KIND} {resource.name} "
                    f"{REASON_TEXT}; its value on {platform.capitalize()} is left as it is "
                    f"and no longer managed ({why}): declare it again to manage it",
                    "prunable": False,
                }
                if site:
                    entry["site"] = site
                if resource.KIND == "Device":
                    entry["device"] = resource.name
                out.append(entry)
                break
    return out
