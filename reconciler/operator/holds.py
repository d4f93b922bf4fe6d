"""Writes held back after a permanent failure. An apply that failed for a reason retrying
cannot cure (a 4xx answer, a device that reports another serial than the declared one)
would fail the same way at every drift check, and on the way write to the gateway again:
adding the device (with its password) and removing it, every interval, forever. So the
operator remembers the failure with a fingerprint of what the writes were made from (the
object and everything it depends on, and the MQTT passwords they send), and until that
changes it only observes: the timer still plans and reports, but writes nothing.

A change of the spec, labels or annotations of the object or of one it depends on (say
`kubectl annotate` to ask for another attempt), or of a password in its Secret, lets the
next reconcile write again. Kept in memory: a restarted operator tries once more, as it
does for everything on start-up."""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass
from secrets import token_bytes

from reconciler.engine.config import SecretResolver
from reconciler.engine.credentials import mqtt_passwords
from reconciler.model.fleet import Fleet

Owner = tuple[str, str, str]  # namespace, kind, name of the object whose changes these are


@dataclass(frozen=True)
class Hold:
    inputs: str  # fingerprint of what the failed writes were made from
    message: str  # what failed


class Holds:
    """The held objects of one operator process."""

    def __init__(self) -> None:
        # Passwords go into the fingerprints: keyed, so memory holds nothing to test a
        # guess against.
        self._key = token_bytes(32)
        self._held: dict[Owner, Hold] = {}

    def inputs(self, fleet: Fleet, secrets: SecretResolver | None) -> str:
        """A fingerprint of `fleet` (an object and its dependencies) and its passwords."""
        documents = [
            r.model_dump(mode="json", by_alias=True, exclude_none=True)
            for r in sorted(fleet.resources(), key=lambda r: (r.KIND, r.name))
        ]
        passwords = []
        for device, source, _ in mqtt_passwords(fleet):
            try:
                value = secrets.resolve(source) if secrets is not None else ""
            except KeyError as exc:
                value = f"unreadable: {exc.args[0] if exc.args else ''}"
            passwords.append((device.name, value))
        text = json.dumps([documents, sorted(passwords)], sort_keys=True, default=str)
        return hmac.new(self._key, text.encode(), hashlib.sha256).hexdigest()

    def held(self, owner: Owner, inputs: str) -> Hold | None:
        """The hold on `owner`'s writes, if its last apply failed permanently from the
        same inputs."""
        hold = self._held.get(owner)
        return hold if hold is not None and hmac.compare_digest(hold.inputs, inputs) else None

    def hold(self, owner: Owner, inputs: str, message: str) -> None:
        self._held[owner] = Hold(inputs, message)

    def release(self, owner: Owner) -> None:
        self._held.pop(owner, None)
