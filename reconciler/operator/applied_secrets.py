"""A Device's `status.appliedSecrets` (`model.status.AppliedSecrets`): the fingerprint of
the MQTT password last sent to it (`engine.credentials`), and which copy of it a reconcile
compares the password in the Secret with.

The status a reconcile is given is kopf's copy of the object, which can be older than the
status the previous reconcile wrote: kopf's watch had not brought that write yet (under
load, or a drift check that began while the write was in flight: the write lands after
the object's lock is let go). A reconcile that found no fingerprint there took the
password in the Secret, rotated meanwhile, for the one on the device, and the device kept
the old one for good. So the operator keeps, per Device, the block its own last reconcile
made (`LastApplied`), and the newer of that and the status's is compared with: each block
carries a revision, one more at every change of the fingerprint, and the higher is the
newer. The one in the status wins a tie, and is all there is after a restart (kopf lists
every object at start: its copy is the API server's then) or for an object another
replica reconciled since: that replica counted on from the status it was given."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from reconciler.engine.credentials import CredentialLedger, key_id
from reconciler.model.status import AppliedSecrets

Key = tuple[str, str, str]  # namespace, name and uid of a Device


def _parsed(block: Mapping[str, Any] | None) -> AppliedSecrets | None:
    """The block as the model has it; None when there is none or it does not parse."""
    if not block:
        return None
    try:
        return AppliedSecrets.model_validate(block)
    except ValidationError:
        return None


class LastApplied:
    """The `status.appliedSecrets` each Device's last reconcile in this process made."""

    def __init__(self) -> None:
        self._blocks: dict[Key, AppliedSecrets] = {}

    def newest(self, key: Key, status: Mapping[str, Any] | None) -> AppliedSecrets | None:
        """The newer of the block in `status` (kopf's copy) and the one recorded here."""
        given = _parsed(status)
        own = self._blocks.get(key)
        if own is None or (given is not None and given.revision >= own.revision):
            return given
        return own

    def record(self, key: Key, block: AppliedSecrets) -> None:
        self._blocks[key] = block

    def forget(self, key: Key) -> None:
        self._blocks.pop(key, None)


@dataclass
class PasswordFingerprint:
    """The fingerprint of one Device's MQTT password, kept under the operator's credential
    key. A fingerprint made under another key (the operator started without a fixed one),
    or a block that does not parse, compares as unknown. `status`: the block of kopf's copy
    of the Device; with `last` and `owner`, the newer of it and this process's own is
    compared with, and the block made is recorded there. `ledger` and `block` are called
    while the Device's lock is held (`owner_locks`), so that no other reconcile of it
    records in between."""

    key: bytes = field(repr=False)
    status: Mapping[str, Any] | None = None
    last: LastApplied | None = None
    owner: Key | None = None
    # The block the ledger was read from (`ledger`): what `block` counts on from.
    _base: AppliedSecrets | None = field(default=None, init=False, repr=False)

    def ledger(self, device_key: str | None) -> CredentialLedger:
        if self.last is not None and self.owner is not None:
            self._base = self.last.newest(self.owner, self.status)
        else:
            self._base = _parsed(self.status)
        ledger = CredentialLedger(self.key)
        recorded = self._base
        if device_key and recorded is not None and recorded.key_id == key_id(self.key):
            ledger.entries[device_key] = recorded.mqtt_password_fingerprint
        return ledger

    def block(self, ledger: CredentialLedger, device_key: str | None) -> dict[str, Any] | None:
        recorded = ledger.entries.get(device_key or "")
        if not recorded:
            return None
        base = self._base
        revision = base.revision if base is not None else 0
        if base is None or (base.key_id, base.mqtt_password_fingerprint) != (
            key_id(self.key), recorded
        ):
            revision += 1
        applied = AppliedSecrets(
            key_id=key_id(self.key), mqtt_password_fingerprint=recorded, revision=revision
        )
        if self.last is not None and self.owner is not None:
            self.last.record(self.owner, applied)
        return applied.model_dump(by_alias=True)
