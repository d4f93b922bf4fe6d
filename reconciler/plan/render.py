"""The text rendering of a plan document for terminals (colored on a TTY unless NO_COLOR
is set or TERM is dumb), and the words and symbols it shares with the Markdown one
(`plan.markdown`). Both read only the document, so a saved plan renders exactly like a
fresh one."""

from __future__ import annotations

import json
from typing import Any

from reconciler.printable import clipped_words, echo, printable

# Colour per first action; no colour for no-op.
_COLOURS = {
    "create": "32",
    "claim": "32",
    "update": "33",
    "verify": "36",
    "defer": "35",
    "delete": "31",
    "release": "31",
    "transfer": "31",
    "replace": "31",
}
SYMBOLS = {
    "create": "+",
    "update": "~",
    "delete": "-",
    "replace": "-/+",
    "claim": "⇒",
    "transfer": "⇄",
    "release": "⇐",
    "verify": "?",
    "defer": "…",
    "no-op": " ",
}
_VERBS = {
    "create": "created",
    "update": "updated in place",
    "delete": "destroyed",
    "replace": "replaced",
    "claim": "claimed",
    "transfer": "transferred",
    "release": "released",
    "verify": "verified",
    "defer": "deferred",
}


def action_of(entry: dict[str, Any]) -> str:
    """The one action a document entry shows as: "replace" for `["delete", "create"]`."""
    actions = entry["actions"]
    return "replace" if actions == ["delete", "create"] else actions[0]


# The longest value a field change shows whole, in the text and the Markdown renderings:
# no platform documents a limit on a name, and a 200,000-character displayName is valid,
# but printed whole it is the whole screen (and more than a pull-request comment holds).
# Longer values show their start and their length; the JSON plan keeps them whole.
VALUE_LIMIT = 200


def _json(value: object) -> str:
    # UTF-8 as written ("Malmö", not "Malm\\u00f6"); JSON still escapes control characters.
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


def _value(value: Any) -> str:
    # `printable` escapes what else a terminal would act on.
    return printable(echo(value, VALUE_LIMIT, show=_json))


def diff_lines(entry: dict[str, Any]) -> list[str]:
    """The field changes of a document entry, a line each (`+ path = value`, ...)."""
    lines = []
    for d in entry.get("diff", []):
        if d["op"] == "add":
            lines.append(f"    + {printable(d['path'])} = {_value(d['new'])}")
        elif d["op"] == "remove":
            lines.append(f"    - {printable(d['path'])} = {_value(d['old'])}")
        else:
            lines.append(f"    ~ {printable(d['path'])}: {_value(d['old'])} -> {_value(d['new'])}")
    return lines


def summary_line(summary: dict[str, Any]) -> str:
    parts = []
    for key, label in (
        ("create", "to create"),
        ("claim", "to claim"),
        ("update", "to update"),
        ("replace", "to replace"),
        ("transfer", "to transfer"),
        ("delete", "to delete"),
        ("release", "to release"),
        ("verify", "to verify"),
        ("defer", "deferred"),
        ("blocked", "blocked"),
    ):
        if summary.get(key):
            parts.append(f"{summary[key]} {label}")
    return ", ".join(parts) if parts else "no changes"


def outside_selection(summary: dict[str, Any]) -> str:
    """"N changes outside the selection are not shown" when a --target or --exclude left
    out changes (`summary.outside_selection`), else "": a selection with nothing to do
    must not read as a fleet with nothing to do. A plan saved before format 1.5 has no
    count."""
    count = summary.get("outside_selection") or 0
    if not count:
        return ""
    return ("1 change outside the selection (--target, --exclude) is not shown" if count == 1
            else f"{count} changes outside the selection (--target, --exclude) are not shown")


def objects(count: int) -> str:
    """"1 object", "2 objects"."""
    return "1 object" if count == 1 else f"{count} objects"


def what_prune_does(unmanaged: list[dict[str, Any]], prune: str = "apply --prune") -> str:
    """What `prune` does with the unmanaged objects listed, as said in brackets after their
    count: by each object's `prunable`, so that a list of what no plan removes (a DER, a
    site, what a plan with --prune already left) is not said to go with --prune."""
    count = len(unmanaged)
    if any("prunable" not in item for item in unmanaged):
        # A plan saved before format 1.4 does not say which.
        return f"{prune} removes " + (
            "it where its policy allows" if count == 1 else "them where their policy allows"
        )
    prunable = sum(1 for item in unmanaged if item["prunable"])
    if prunable == 0:
        return f"{prune} leaves " + ("it, as it says" if count == 1 else "them, as each says")
    if prunable == count:
        return f"{prune} removes " + ("it" if count == 1 else "them")
    return f"{prune} removes {prunable} of them, the others as each says"


def render_text(document: dict[str, Any], *, color: bool = False) -> str:
    def paint(code: str, text: str) -> str:
        return f"\x1b[{code}m{text}\x1b[0m" if color else text

    pending = [e for e in document["changes"] if e["actions"] != ["no-op"]]
    lines: list[str] = []
    unmanaged = document.get("unmanaged", [])
    outside = outside_selection(document["summary"])
    if not pending and outside:
        found = (f"; {objects(len(unmanaged))} found that nothing declares "
                 f"({what_prune_does(unmanaged)}):" if unmanaged else ".")
        lines.append(f"No changes in the selected objects; {outside}{found}")
    elif not pending and unmanaged:
        # "The actual state matches" would read oddly above a list of what does not.
        lines.append(
            f"No changes. The declared objects match the actual state; "
            f"{objects(len(unmanaged))} found that nothing declares "
            f"({what_prune_does(unmanaged)}):"
        )
    elif not pending:
        lines.append("No changes. The actual state matches the desired state.")
    else:
        lines.append(
            "Planned actions: + create  ~ update  -/+ replace  - delete  ⇒ claim  "
            "⇄ transfer  ⇐ release  ? verify  … defer"
        )
        lines.append("")
        for entry in pending:
            action = action_of(entry)
            code = "31" if entry["blocked"] else _COLOURS.get(action, "0")
            # Addresses and messages carry what gateways and clouds report (an undeclared
            # device's serial, an error body): shown, never acted on by the terminal.
            address = printable(entry["address"])
            head = f"{SYMBOLS[action]:>3} {address} will be {_VERBS[action]}"
            if action == "defer":
                head = f"{SYMBOLS[action]:>3} {address} is deferred"
            if entry["blocked"]:
                head += "  [BLOCKED]"
            lines.append(paint(code, head))
            if entry["message"]:
                lines.append(f"      {printable(clipped_words(entry['message']))}")
            lines += diff_lines(entry)
    for item in unmanaged:
        lines.append(f"  ! unmanaged: {printable(clipped_words(item['description']))}")
    lines.append("")
    lines.append(f"Plan: {summary_line(document['summary'])}.")
    if outside and pending:
        lines.append(f"{outside[0].upper()}{outside[1:]}.")
    return "\n".join(lines) + "\n"
