"""What the planners and the engine advise of the CLI's flags, said as an operator user acts.
A plan note, a blocked change's reason or an error says what `apply --prune` would do, or
to run it; the operator has no such flag, prunes nothing it does not declare (it lists it
in `status.unmanaged`) and selects nothing (`--target`). Every text the operator writes
into an Event, a condition, a kopf error or `status.unmanaged` goes through `for_operator`,
which rewrites each such phrase the planners write (`reconciler/plan`, `engine/enapter.py`)
into what the operator's user does instead: delete it in the platform, or nothing, where
the advice only says what the CLI's flag would add. Pure."""

from __future__ import annotations

import re

_UNMANAGED = "the operator deletes nothing it does not declare, and lists it in status.unmanaged"

# (pattern, replacement), in this order: the longer phrases before the short ones they hold.
_REWRITES: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(pattern), replacement)
    for pattern, replacement in (
        # A Lua device's slug changed (`plan.enapter._note_twins`): the old one stays.
        (r"\(unmanaged, below\)", "(in status.unmanaged of its Site)"),
        (r"apply --prune deletes it \(with every unmanaged object the plan lists\), or delete "
         r"it in Enapter Cloud", f"delete it in Enapter Cloud ({_UNMANAGED})"),
        # A device moved to another Site on Enapter (`plan.enapter._settle_moves`).
        (r"apply with --prune, Site (\S+) included, to delete it there and provision it here",
         r"delete it there in Enapter Cloud (Site \1 lists it in status.unmanaged: "
         r"the operator deletes nothing it does not declare), and it is provisioned here"),
        # A slug an undeclared device holds (`plan.enapter._slug_holders`).
        (r"delete it \(apply --prune\)", "delete it in Enapter Cloud"),
        # An Enapter site found by name (`plan.enapter_sites`).
        (r"listed as unmanaged, or deleted with --prune", "listed in status.unmanaged"),
        # A Novacore site left by its Site (`plan.retired`).
        (r"\(--prune does not delete sites\)", "(no site is ever deleted)"),
        # A device's copy on the Zap it moved from (`plan.sourceful_unmanaged`,
        # `plan.retired_gateways`): the operator removes one only with its Gateway's release.
        (r"use --prune to remove it from this gateway",
         "delete it on this gateway's Zap (its release, deletionPolicy Release, removes it)"),
        # A device of the Zap where a Device is to be added (`plan.zap_endpoint_clashes`).
        (r"\(`apply --prune` removes what no Device declares\)", f"({_UNMANAGED})"),
        # A claimed gateway nothing declares (`plan.sourceful_unmanaged`).
        (r"use --prune to release it", "release it in Novacore, or declare its Gateway"),
        # A config file not removed after a delete (`engine.enapter`).
        (r"the next apply with --prune tries again", "the next reconcile tries again"),
        # What a damaged inventory in the state directory costs (`engine.state`).
        (r"released by --prune only if", "released only if"),
        # What the CLI's flag adds to a note, and nothing the operator's user does.
        (r" \(--prune removes it\)", ""),
        (r", so --prune leaves it", ""),
        (r", --prune\b", ""),
        (r" \(--prune\)", ""),
        # A change after one another object's reconcile applies (`plan.planner`).
        (r"which is outside the selection \(--target, --exclude\)",
         "which another object's reconcile applies"),
    )
)


def for_operator(text: str) -> str:
    """`text` with what it advises of the CLI's flags said as the operator's user acts."""
    if "--" not in text and "unmanaged, below" not in text:
        return text
    for pattern, replacement in _REWRITES:
        text = pattern.sub(replacement, text)
    return text
