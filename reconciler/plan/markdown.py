"""The Markdown rendering of a plan document, for a pull-request comment: the summary
first, then a collapsible section per site (its changes as a table, its field changes as a
diff), then the objects found that nothing declares.

A comment has a size limit (GitHub refuses a body over 65,536 characters). Given `limit`,
a plan that would be longer keeps the sites that fit, in plan order, and says at the top
how many changes it leaves out and where every one of them is: the JSON plan and
`reconciler plan -o text`. Whatever is cut, the Markdown stays whole (no table, block or
`<details>` is left open)."""

from __future__ import annotations

import html
import re
from collections import Counter
from typing import Any

from reconciler.plan.render import (
    SYMBOLS,
    action_of,
    diff_lines,
    objects,
    outside_selection,
    summary_line,
)
from reconciler.printable import clipped_words, printable

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
# What GitHub links on its own (GFM autolinks): a URL of a scheme (`http://…`) or starting
# `www.`. A zero-width space after the scheme's colon, or after `www`, shows the same text
# and is no link: a message naming a gateway's address is not an invitation to click it.
_AUTOLINK = re.compile(r"(?i)(\b(?:https?|ftp):)(?=//)|(\bwww)(?=\.)")

_TABLE_HEAD = ["| | Address | Action | Reason |", "|---|---|---|---|"]


def _md_escape(text: str) -> str:
    """Text from outside (a message a gateway or cloud reported, a description) as literal
    text on one line of Markdown: no markup of its own, no HTML, no new row or item, and
    no mention, issue reference or link."""
    # A word a page long (an id, a name a cloud reports) is cut as the text plan cuts it.
    text = printable(clipped_words(re.sub(r"\r\n|[\r\n]", " ", text))).strip()
    text = _MD_INLINE.sub(lambda match: "\\" + match[0], text)
    text = _unlinked(text)
    start = _MD_BLOCK_START.match(text)
    if start is None:
        return text
    if start[0].isdigit():  # "1. " or "1) ": escape the delimiter after the number
        return f"{start[0]}\\{text[start.end():]}"
    return f"\\{text}"


def _html_text(text: str) -> str:
    """Text from outside inside HTML (a `<summary>`, where Markdown is not read): escaped,
    on one line, with no mention, issue reference or link."""
    return _unlinked(html.escape(printable(text)))


def _unlinked(text: str) -> str:
    """`text` with every mention, issue reference and autolink broken by a zero-width space."""
    text = _GITHUB_REFERENCE.sub(r"\1&#8203;", text)
    return _AUTOLINK.sub(lambda match: (match[1] or match[2]) + "&#8203;", text)


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


def size(text: str) -> int:
    """The length of `text` as a comment limit counts it: in UTF-16 code units, as
    JavaScript's `length` does (a character outside the BMP, an emoji, counts twice), so a
    body that fits here fits whichever way a forge counts."""
    return len(text.encode("utf-16-le")) // 2


def _row(entry: dict[str, Any]) -> str:
    action = action_of(entry)
    mark = ":no_entry:" if entry["blocked"] else f"`{SYMBOLS[action].strip() or '='}`"
    return (
        f"| {mark} | {_md_code_cell(entry['address'])} | {action} | "
        f"{_md_escape(entry['message'] or entry['reason'])} |\n"
    )


def _field_changes(entries: list[dict[str, Any]]) -> str:
    """The field changes of `entries` as one diff block, or "" when none has any."""
    body = []
    for entry in entries:
        if entry.get("diff"):
            body.append(f"# {printable(entry['address'])}")
            body += [
                line.replace("    ~", "!").replace("    +", "+").replace("    -", "-")
                for line in diff_lines(entry)
            ]
    if not body:
        return ""
    # A fence longer than any backtick run inside: a value holding ``` cannot end it.
    fence = "`" * max(3, _longest_backtick_run("\n".join(body)) + 1)
    return "\n".join([fence + "diff", *body, fence]) + "\n\n"


def _site_summary(site: str, entries: list[dict[str, Any]]) -> str:
    counts = Counter(action_of(e) for e in entries)
    counts["blocked"] = sum(1 for e in entries if e["blocked"])
    where = f"<code>{_html_text(site)}</code>" if site else "not in a declared site"
    mark = ":no_entry: " if counts["blocked"] else ""
    return f"{mark}{where}: {summary_line(counts)}"


def _site_section(site: str, entries: list[dict[str, Any]], *, is_open: bool) -> str:
    opening = "<details open>" if is_open else "<details>"
    rows = "".join(_row(e) for e in entries)
    return (
        f"{opening}<summary>{_site_summary(site, entries)}</summary>\n\n"
        + "\n".join(_TABLE_HEAD) + "\n" + rows + "\n"
        + _field_changes(entries)
        + "</details>\n\n"
    )


def _cut_site_section(site: str, entries: list[dict[str, Any]], room: int) -> tuple[str, int]:
    """The first rows of a site that does not fit whole, without its field changes, in
    `room`: the section and how many rows it holds ("", 0 when not even one fits)."""
    rows = [_row(e) for e in entries]

    def section(count: int) -> str:
        shown = f" (the first {count} of its {len(entries)} changes; no field changes)"
        return (
            f"<details><summary>{_site_summary(site, entries)}{shown}</summary>\n\n"
            + "\n".join(_TABLE_HEAD) + "\n" + "".join(rows[:count]) + "\n</details>\n\n"
        )

    # With room for the digits of the count of rows shown, at most those of all of them.
    used = size(section(0)) + len(str(len(entries))) - 1
    count = 0
    while count < len(rows) and used + size(rows[count]) <= room:
        used += size(rows[count])
        count += 1
    return (section(count), count) if count else ("", 0)


def _unmanaged_section(unmanaged: list[dict[str, Any]], count: int) -> str:
    items = "".join(f"- {_md_escape(u['description'])}\n" for u in unmanaged[:count])
    shown = f", the first {count}" if count < len(unmanaged) else ""
    return (
        f"<details><summary>Unmanaged objects ({len(unmanaged)}{shown})</summary>\n\n"
        f"{items}\n</details>\n\n"
    )


def _note(changes: int, of_changes: int, sites: int, of_sites: int, unmanaged: int,
          of_unmanaged: int, limit: int) -> str:
    left_out = []
    if changes:
        where = f", in {sites} of {of_sites} sites" if of_sites > 1 else ""
        left_out.append(f"{changes} of {of_changes} changes{where}")
    if unmanaged:
        left_out.append(f"{unmanaged} of {of_unmanaged} unmanaged objects")
    return (
        f"> **Not shown here: {' and '.join(left_out)}**, to keep this comment within "
        f"{limit:,} characters. `reconciler plan -o text` lists every change, and the plan "
        "as JSON (`-o json`, or `--out FILE`; the CI recipes keep it as `plan.json`) holds "
        "them all.\n\n"
    )


def render_markdown(document: dict[str, Any], *, limit: int | None = None) -> str:
    """The plan as Markdown; with `limit`, at most that many characters (`size`), unless
    even the summary and the note of what is left out are longer."""
    summary = document["summary"]
    pending = [e for e in document["changes"] if e["actions"] != ["no-op"]]
    unmanaged = document.get("unmanaged", [])
    outside = outside_selection(summary)
    if pending:
        status = f"**{summary_line(summary)}**"
        if outside:
            status += f" ({outside})"
    elif outside:
        status = f"No changes in the selected objects; **{outside}**."
        if unmanaged:
            status += f" {objects(len(unmanaged))} found that nothing declares (below)."
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
    head = f"### Reconciler plan\n\n{status}\n\n"
    foot = (
        f"<sub>format {document['format_version']} · reconciler "
        f"{document.get('reconciler_version', '')}</sub>\n"
    )
    # Changes in plan order, grouped by their site (those of no declared site come last:
    # the planner orders them so).
    sites: dict[str, list[dict[str, Any]]] = {}
    for entry in pending:
        sites.setdefault(entry.get("site") or "", []).append(entry)
    sections = [
        _site_section(site, entries, is_open=len(sites) == 1) for site, entries in sites.items()
    ]
    whole = head + "".join(sections)
    if unmanaged:
        whole += _unmanaged_section(unmanaged, len(unmanaged))
    whole += foot
    if limit is None or size(whole) <= limit:
        return whole

    # Room for the note at its longest: fewer left out never makes it longer.
    room = limit - size(head) - size(foot) - size(
        _note(len(pending), len(pending), len(sites), len(sites), len(unmanaged),
              len(unmanaged), limit)
    )
    kept: list[str] = []
    shown_changes = 0
    whole_sites = 0
    for section, (site, entries) in zip(sections, sites.items(), strict=True):
        if size(section) <= room:
            kept.append(section)
            room -= size(section)
            shown_changes += len(entries)
            whole_sites += 1
            continue
        cut, count = _cut_site_section(site, entries, room)
        if count:
            kept.append(cut)
            room -= size(cut)
            shown_changes += count
        break
    shown_unmanaged = 0
    if unmanaged and shown_changes == len(pending):
        # The list of what nothing declares, as far as it fits.
        used = size(_unmanaged_section(unmanaged, 0)) + len(str(len(unmanaged))) - 1
        for item in unmanaged:
            used += size(f"- {_md_escape(item['description'])}\n")
            if used > room:
                break
            shown_unmanaged += 1
        if shown_unmanaged:
            kept.append(_unmanaged_section(unmanaged, shown_unmanaged))
    note = _note(
        len(pending) - shown_changes, len(pending), len(sites) - whole_sites, len(sites),
        len(unmanaged) - shown_unmanaged, len(unmanaged), limit,
    )
    return head + note + "".join(kept) + foot
