"""Warnings for RECONCILER_* variables that are no setting but look like one mistyped.

A mistyped variable is not read, and nothing else would say so: `RECONCILER_STATE_DIRECTORY`
leaves the state directory `.reconciler`, where the memory of earlier applies is not, and
`RECONCILER_GATEWAY_URL` leaves every Zap reached at the URL of its YAML. Other tools use the
prefix too (the CI script, the Helm chart's operator settings), so a name is only warned
about when it is close to a setting's, and never when it is one of theirs. Nothing here
reads a value: only names are compared, and only names are shown."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import fields

from reconciler.engine.config import PREFIX, Settings
from reconciler.name_list import closest

# The variables `load_settings` reads: one per field (the proxies come from the standard
# variables), the settings file, and the gateway-URLs file, which is no field.
SETTING_VARIABLES = frozenset(
    [PREFIX + f.name.upper() for f in fields(Settings) if f.name != "proxies"]
    + [PREFIX + "CONFIG", PREFIX + "GATEWAY_URLS_FILE"]
)
# RECONCILER_* variables of others: ci/reconciler-ci.sh, the GitHub workflow, the operator.
OTHER_VARIABLES = frozenset(PREFIX + name for name in (
    "PLAN_ARGS", "OUT_DIR", "CHANGES_EXIT", "BIN", "PACKAGE", "MQTT_SECRETS", "MQTT_ENV",
))
OTHER_PREFIXES = (PREFIX + "OPERATOR_",)


def mistyped(names: Iterable[str]) -> list[tuple[str, str]]:
    """(name, the setting it likely meant) for each of `names` that starts with the prefix,
    is no setting nor another tool's variable, and is close to a setting's name (compared
    without the prefix, which every name shares)."""
    suffixes = {name.removeprefix(PREFIX): name for name in SETTING_VARIABLES}
    found = []
    for name in sorted(names):
        if (not name.startswith(PREFIX) or name in SETTING_VARIABLES
                or name in OTHER_VARIABLES or name.startswith(OTHER_PREFIXES)):
            continue
        meant = closest(name.removeprefix(PREFIX), suffixes)
        if meant is not None:
            found.append((name, suffixes[meant]))
    return found


def warnings(environ: Mapping[str, str]) -> list[str]:
    """The warning lines for the mistyped variables set (an empty one counts as unset)."""
    return [
        f"warning: {name} is no setting and is not read; did you mean {meant}?"
        for name, meant in mistyped(name for name, value in environ.items() if value)
    ]
