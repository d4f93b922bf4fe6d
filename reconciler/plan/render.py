"""Human renderings of a plan document: text for terminals (colored on a TTY unless
NO_COLOR is set) and Markdown for pull-request comments. Both read only the document, so
a saved plan renders exactly like a fresh one."""

from __future__ import annotations

import json
import re
from typing import Any

from reconciler.printable import printable

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
_SYMBOLS = {
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


def _action(entry: dict[str, Any]) -> str:
    actions = entry["actions"]
    return "replace" if actions == ["delete", "create"] else actions[0]


def _value(value: Any) -> str:
    # UTF-8 as written ("Malmö", not "Malm\\u00f6"); JSON still escapes control characters,
    # and `printable` what else a terminal would act on.
    return printable(json.dumps(value, sort_keys=True, ensure_ascii=False))


def _diff_lines(entry: dict[str, Any]) -> list[str]:
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


def objects(count: int) -> str:
    """"1 object", "2 objects"."""
    return "1 object" if count == 1 else f"{count} objects"


def pruned_where_allowed(count: int) -> str:
    """What --prune removes of `count` unmanaged objects, as said after "removes"."""
    return "it where its policy allows" if count == 1 else "them where their policy allows"


def render_text(document: dict[str, Any], *, color: bool = False) -> str:
    def paint(code: str, text: str) -> str:
        return f"\x1b[{code}m{text}\x1b[0m" if color else text

    pending = [e for e in document["changes"] if e["actions"] != ["no-op"]]
    lines: list[str] = []
    unmanaged = document.get("unmanaged", [])
    if not pending and unmanaged:
        # "The actual state matches" would read oddly above a list of what does not.
        lines.append(
            f"No changes. The declared objects match the actual state; "
            f"{objects(len(unmanaged))} found that nothing declares (apply --prune "
            f"removes {pruned_where_allowed(len(unmanaged))}):"
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
            action = _action(entry)
            code = "31" if entry["blocked"] else _COLOURS.get(action, "0")
            # Addresses and messages carry what gateways and clouds report (an undeclared
            # device's serial, an error body): shown, never acted on by the terminal.
            address = printable(entry["address"])
            head = f"{_SYMBOLS[action]:>3} {address} will be {_VERBS[action]}"
            if action == "defer":
                head = f"{_SYMBOLS[action]:>3} {address} is deferred"
            if entry["blocked"]:
                head += "  [BLOCKED]"
            lines.append(paint(code, head))
            if entry["message"]:
                lines.append(f"      {printable(entry['message'])}")
            lines += _diff_lines(entry)
    for item in unmanaged:
        lines.append(f"  ! unmanaged: {printable(item['description'])}")
    lines.append("")
    lines.append(f"Plan: {summary_line(document['summary'])}.")
    return "\n".join(lines) + "\n"


# Characters that start inline Markdown or HTML in a table cell or a list item: code spans,
# emphasis, strikethrough, links and images, HTML tags and entities, GitHub's math, and the
# cell separator (and the backslash, which would escape what follows it). CommonMark lets
# any ASCII punctuation be escaped with a backslash, which then shows as itself.
_MD_INLINE = re.compile(r"[\\`*_\[\]<>&|~$]")
# What would open a block at the start of a list item: a heading, a quote, a list.
_MD_BLOCK_START = re.compile(r"^(?:[#>+-]|\d+(?=[.)]))")
# A mention (@name, @org/team) or an issue reference (#12, owner/repo#12): in a pull-request
# comment GitHub would notify that user or team, or cross-link that issue. A zero-width space
# after the sign keeps the text as it reads and breaks the reference (as Renovate does).
_GITHUB_REFERENCE = re.compile(r"([@#])(?=[A-Za-z0-9])")


def _md_escape(text: str) -> str:
    """Text from outside (a message a gateway or cloud reported, a description) as literal
    text on one line of Markdown: no markup of its own, no HTML, no new row or item, and
    no mention or issue reference."""
    text = printable(re.sub(r"\r\n|[\r\n]", " ", text)).strip()
    text = _MD_INLINE.sub(lambda match: "\\" + match[0], text)
    text = _GITHUB_REFERENCE.sub(r"\1&#8203;", text)
    start = _MD_BLOCK_START.match(text)
    if start is None:
        return text
    if start[0].isdigit():  # "1. " or "1) ": escape the delimiter after the number
        return f"{start[0]}\\{text[start.end():]}"
    return f"\\{text}"


def _longest_backtick_run(text: str) -> int:
    return max((len(run) for run in re.findall("`+", text)), default=0)


def _md_code_cell(text: str) -> str:
    """`text` as a code span in a table cell, shown as written. A serial may hold any
    character: the span's delimiter is longer than any backtick run inside (CommonMark),
    and `|` is escaped as `\\|`, which GitHub's tables take out again even in code spans
    (a bare `|` would end the cell)."""
    text = printable(text).replace("|", "\\|")  # printable has escaped line breaks
    fence = "`" * (_longest_backtick_run(text) + 1)
    # CommonMark strips one space from each end of a span that has one at both, so a
    # space there keeps a backtick at an end from joining the delimiter.
    if text[:1] == "`" or text[-1:] == "`" or (text[:1] == text[-1:] == " "):
        text = f" {text} "
    return f"{fence}{text}{fence}"


def render_markdown(document: dict[str, Any]) -> str:
    summary = document["summary"]
    pending = [e for e in document["changes"] if e["actions"] != ["no-op"]]
    unmanaged = document.get("unmanaged", [])
    lines = ["### Reconciler plan", ""]
    if pending:
        status = f"**{summary_line(summary)}**"
    elif unmanaged:
        # As in the text: not a bare "No changes." above a list of what does not match.
        status = (
            f"No changes. The declared objects match the actual state; "
            f"**{objects(len(unmanaged))} found that nothing declares** (below)."
        )
    else:
        status = "No changes."
    if summary.get("blocked"):
        status += f" — :no_entry: {summary['blocked']} blocked"
    lines += [status, ""]
    if pending:
        lines += ["| | Address | Action | Reason |", "|---|---|---|---|"]
        for entry in pending:
            action = _action(entry)
            mark = ":no_entry:" if entry["blocked"] else f"`{_SYMBOLS[action].strip() or '='}`"
            lines.append(
                f"| {mark} | {_md_code_cell(entry['address'])} | {action} | "
                f"{_md_escape(entry['message'] or entry['reason'])} |"
            )
        lines.append("")
        detailed = [e for e in pending if e.get("diff")]
        if detailed:
            body = []
            for entry in detailed:
                body.append(f"# {printable(entry['address'])}")
                body += [
                    line.replace("    ~", "!").replace("    +", "+").replace("    -", "-")
                    for line in _diff_lines(entry)
                ]
            # A fence longer than any backtick run inside: a value holding ``` cannot end it.
            fence = "`" * max(3, _longest_backtick_run("\n".join(body)) + 1)
            lines += ["<details><summary>Field changes</summary>", "", fence + "diff"]
            lines += [*body, fence, "", "</details>", ""]
    if unmanaged:
        lines += ["<details><summary>Unmanaged objects (" + str(len(unmanaged)) + ")</summary>", ""]
        lines += [f"- {_md_escape(u['description'])}" for u in unmanaged]
        lines += ["", "</details>", ""]
    lines.append(
        f"<sub>format {document['format_version']} · reconciler "
        f"{document.get('reconciler_version', '')}</sub>"
    )
    return "\n".join(lines) + "\n"
