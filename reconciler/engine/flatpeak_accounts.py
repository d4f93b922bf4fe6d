"""Which Flatpeak account the state directory's inventory applied its locations with, and
what a plan does with the locations of another account than the settings name.

A location is visible to its own account only: listed with another one it is missing, as
a location deleted is. Were the remembered locations looked for there, a plan with another
account (RECONCILER_FLATPEAK_ACCOUNT_ID changed, the state directory of one fleet used for
a second account) would take them all for deleted and the inventory would forget them in
silence, while the Sites' locations were created anew in the other account. So each
location is remembered with a fingerprint of its account (`plan_origin.flatpeak_account`:
the id is not written in clear), only the current account's are looked for and forgotten,
and the others are kept and said. A location remembered before the fingerprint was kept
has none, and is looked for in whatever account the settings name, as before."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass
class RememberedLocations:
    """The inventory's locations split by account: `here`, those of the account the
    settings name (or of none recorded), location id -> Site; `elsewhere`, those applied
    with another account, location id -> Site."""

    here: dict[str, str] = field(default_factory=dict)
    elsewhere: dict[str, str] = field(default_factory=dict)


def split(
    locations: Mapping[str, str], accounts: Mapping[str, str], account: str
) -> RememberedLocations:
    """`locations`: location id -> Site; `accounts`: location id -> the fingerprint of its
    account, where recorded; `account`: the fingerprint of the account of the settings."""
    found = RememberedLocations()
    for location_id, site in locations.items():
        recorded = accounts.get(location_id)
        target = found.here if recorded is None or recorded == account else found.elsewhere
        target[location_id] = site
    return found


# The most locations a warning names; the rest are counted.
_NAMED = 3


def warning(state_dir: str, elsewhere: Mapping[str, str]) -> str | None:
    """What a plan says of the locations applied with another account than the settings
    name (`elsewhere`, location id -> Site), or None when there are none."""
    if not elsewhere:
        return None
    items = sorted(elsewhere.items())
    named = ", ".join(f"{location_id} (Site {site})" for location_id, site in items[:_NAMED])
    more = f" and {len(items) - _NAMED} more" if len(items) > _NAMED else ""
    count = len(items)
    these = "it" if count == 1 else "they"
    return (
        f"the state directory {state_dir} applied {count} Flatpeak "
        f"location{'' if count == 1 else 's'} with another Flatpeak account than "
        f"RECONCILER_FLATPEAK_ACCOUNT_ID names now: {named}{more}; {these} "
        f"{'is' if count == 1 else 'are'} not looked for in this account, nor forgotten, "
        "while the declared Sites' locations are found, or created, in this account. Set "
        "RECONCILER_FLATPEAK_ACCOUNT_ID and RECONCILER_FLATPEAK_API_KEY to the account this "
        "state directory applied with, or use another state directory (RECONCILER_STATE_DIR) "
        "for this account"
    )
