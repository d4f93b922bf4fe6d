"""Where a saved plan was made: the cloud endpoints it read, and would write to, and the
accounts it acted as there. `plan --out` records them in `inputs.endpoints`, and `apply
PLANFILE` refuses a plan whose record is not what its own settings give, before it reads
or writes anything.

The fingerprints of the desired and actual state do not catch this: two organisations or
clouds that hold nothing yet (a staging Novacore and the production one, before the first
apply) answer alike, so a plan reviewed against one would be applied to the other.

Only the platforms the desired state uses are recorded (an Enapter URL set for other
fleets is no concern of a plan of Zaps). URLs are recorded as they are (settings refuse
one with credentials in it); the identity and account that go with the credentials are
recorded as SHA-256 fingerprints, which say whether they changed without writing them
into a file that CI keeps as an artifact."""

from __future__ import annotations

import hashlib
from typing import Any, NamedTuple

from reconciler.engine.config import Settings
from reconciler.model.fleet import Fleet
from reconciler.plan import document

# The plan format that added `inputs.endpoints`: an older plan records none.
RECORDED_SINCE = "1.2"


class Problem(NamedTuple):
    """One way the settings are not known to be where the saved plan was made."""

    text: str
    # The plan recorded another value, which the settings it was made with give again;
    # False when it records none to compare, and no settings make it applicable.
    recorded: bool


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


# The fingerprint recorded for an identity or account that the settings do not name.
_NOT_SET = _sha256("")


def flatpeak_account(settings: Settings) -> str:
    """The fingerprint of the Flatpeak account the settings name: what a saved plan and
    the state directory's inventory (`engine.flatpeak_accounts`) record of it."""
    return _sha256(settings.flatpeak_account_id)


def platforms(fleet: Fleet) -> list[str]:
    """The clouds `fleet` is planned against: Novacore for its Zaps and Novacore sites,
    Enapter and Flatpeak for the sites that declare them."""
    used = set()
    for site in fleet.sites.values():
        for name in ("novacore", "enapter", "flatpeak"):
            if getattr(site.spec, name, None) is not None:
                used.add(name)
    if any(gateway.spec.zap is not None for gateway in fleet.gateways.values()):
        used.add("novacore")
    return sorted(used)


def record(settings: Settings, fleet: Fleet) -> dict[str, dict[str, str]]:
    """Each platform `fleet` uses: its URL, and a fingerprint of the identity or account
    the credentials act as where the settings name one."""
    entries = {
        "novacore": {
            "url": settings.novacore_url,
            "identity_sha256": _sha256(settings.claimer_identity()),
        },
        "enapter": {"url": settings.enapter_url},
        "flatpeak": {
            "url": settings.flatpeak_url,
            "account_sha256": flatpeak_account(settings),
        },
    }
    return {name: entries[name] for name in platforms(fleet)}


# What each recorded key is, and the setting that gives it, for the refusal.
_WHAT = {
    ("novacore", "url"): ("the Novacore URL", "RECONCILER_NOVACORE_URL"),
    ("novacore", "identity_sha256"): (
        "the Novacore identity",
        "RECONCILER_NOVACORE_IDENTITY, or the identity in RECONCILER_NOVACORE_TOKEN",
    ),
    ("enapter", "url"): ("the Enapter URL", "RECONCILER_ENAPTER_URL"),
    ("flatpeak", "url"): ("the Flatpeak URL", "RECONCILER_FLATPEAK_URL"),
    ("flatpeak", "account_sha256"): ("the Flatpeak account", "RECONCILER_FLATPEAK_ACCOUNT_ID"),
}


def problems(saved: Any, settings: Settings, fleet: Fleet, format_version: str) -> list[Problem]:
    """How the settings differ from where the saved plan was made (`saved`, its
    `inputs.endpoints`, of a plan of `format_version`); none when they are the same. A URL
    is named on both sides; an identity or account is not, only that it is another."""
    if not isinstance(saved, dict):
        why = (
            f"plan format {format_version} records none; {RECORDED_SINCE} and later do"
            if document.predates(format_version, RECORDED_SINCE)
            else f"plan format {format_version} records them: was the file edited?"
        )
        return [
            Problem(
                f"the saved plan does not record the endpoints it was made against ({why}), "
                "so where it would be applied cannot be checked",
                recorded=False,
            )
        ]
    out = []
    for platform, now in record(settings, fleet).items():
        then = saved.get(platform)
        for key, value in now.items():
            what, setting = _WHAT[(platform, key)]
            was = then.get(key) if isinstance(then, dict) else None
            if was == value:
                continue
            if not isinstance(was, str):
                text = f"the saved plan does not record {what} it was made against"
                out.append(Problem(text, recorded=False))
            elif key == "url":
                text = f"{what} is {value} ({setting}); the plan was made against {was}"
                out.append(Problem(text, recorded=True))
            elif value == _NOT_SET:
                # No token in this shell, say, while CI made the plan with one: not another
                # identity, none at all.
                text = f"{what} ({setting}) is not set; the plan was made with one"
                out.append(Problem(text, recorded=True))
            else:
                text = f"{what} ({setting}) is not the one the plan was made with"
                out.append(Problem(text, recorded=True))
    return out
