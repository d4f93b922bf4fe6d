"""The Markdown rendering of a plan holds whatever gateways and clouds report: a serial
with `|` or backticks stays in its table cell and its code span, and a value holding a
fence does not end the "Field changes" block. Checked in the text, and, where
markdown-it-py is installed, by parsing it as GitHub does (tables, escaped pipes)."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest
from plan_fixtures import P1_SETTINGS, converged, fresh, make_fleet

from reconciler.plan import document
from reconciler.plan import markdown as md
from reconciler.plan.advice import Audience
from reconciler.plan.observed import ZapDevice
from reconciler.plan.planner import PlanOptions, make_plan

HOSTILE_SN = "A|B`C``D"
HOSTILE_NAME = "Home ```inverter````"


def hostile_markdown() -> str:
    """A plan with an undeclared device of serial HOSTILE_SN (removed with --prune) and a
    device created with display name HOSTILE_NAME."""
    observed = converged()
    observed.zaps["home-zap"].devices[HOSTILE_SN] = ZapDevice(  # type: ignore[union-attr]
        HOSTILE_SN, "p1_uart", "p1_meter", "energy_meter", dict(P1_SETTINGS), {"meter": True})
    fleet = make_fleet(home_overrides={"displayName: Home inverter":
                                       f"displayName: '{HOSTILE_NAME}'"})
    plan = make_plan(fleet, observed, PlanOptions(audience=Audience.CLI, prune=True))
    created = make_plan(fleet, fresh(), PlanOptions(audience=Audience.CLI))
    plan.changes += [c for c in created.changes if c.address == "device/home-inv[novacore]"]
    return md.render_markdown(document.to_document(plan))


def test_an_address_cell_is_one_code_span_whatever_the_serial_holds() -> None:
    markdown = hostile_markdown()
    [row] = [line for line in markdown.splitlines() if "home-zap.A" in line]
    # The delimiter is longer than any backtick run inside; `|` is escaped for the table.
    assert "| ```device/home-zap.A\\|B`C``D[zap]``` | delete |" in row
    assert len(re.split(r"(?<!\\)\|", row)) == 6, "four cells"


def test_field_changes_fence_is_longer_than_any_backtick_run_inside() -> None:
    lines = hostile_markdown().splitlines()
    start = lines.index("`````diff")
    end = lines.index("`````", start + 1)
    assert f'+ name = "{HOSTILE_NAME}"' in lines[start:end]
    assert lines[end + 2] == "</details>"


class _Cells(HTMLParser):
    """The text of each <code> inside a <td>, and of each diff block."""

    def __init__(self) -> None:
        super().__init__()
        self.cells: list[str] = []
        self.blocks: list[str] = []
        self._in: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._in.append(tag)
        if tag == "code" and "td" in self._in:
            self.cells.append("")
        elif tag == "code" and "pre" in self._in:
            self.blocks.append("")

    def handle_endtag(self, tag: str) -> None:
        while self._in and self._in.pop() != tag:
            pass

    def handle_data(self, data: str) -> None:
        # A site's name in a section's <summary> is a code span too: neither cell nor block.
        if self._in[-1:] == ["code"] and ("td" in self._in or "pre" in self._in):
            target = self.cells if "td" in self._in else self.blocks
            target[-1] += data


def test_a_markdown_parser_reads_back_the_address_and_the_value() -> None:
    markdown_it = pytest.importorskip("markdown_it")
    html = markdown_it.MarkdownIt("commonmark").enable("table").render(hostile_markdown())
    parsed = _Cells()
    parsed.feed(html)
    assert "device/home-zap.A|B`C``D[zap]" in parsed.cells
    [block] = parsed.blocks
    assert f'+ name = "{HOSTILE_NAME}"' in block.splitlines()
    assert "</details>" in html.split("</pre>")[1]


HOSTILE_MESSAGE_SN = ("<img src=x onerror=alert(1)> *bold* _it_ [link](https://x.example) "
                      "`code` ~~gone~~ $x$ &amp; \\| 1.")


class _RowText(HTMLParser):
    """The text of each <td> of the table, and every tag found inside one."""

    def __init__(self) -> None:
        super().__init__()
        self.cells: list[str] = []
        self.tags_in_cells: list[str] = []
        self._depth = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "td":
            self.cells.append("")
            self._depth = 1
        elif self._depth:
            self.tags_in_cells.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag == "td":
            self._depth = 0

    def handle_data(self, data: str) -> None:
        if self._depth:
            self.cells[-1] += data


def test_a_reason_shows_what_a_gateway_reported_as_literal_text() -> None:
    """The message of an undeclared device names its serial, which the gateway chose: it
    renders as the text it is, with no markup, link, HTML or table cell of its own."""
    markdown_it = pytest.importorskip("markdown_it")
    observed = converged()
    observed.zaps["home-zap"].devices[HOSTILE_MESSAGE_SN] = ZapDevice(  # type: ignore[union-attr]
        HOSTILE_MESSAGE_SN, "p1_uart", "p1_meter", "energy_meter", dict(P1_SETTINGS),
        {"meter": True})
    plan = make_plan(make_fleet(), observed, PlanOptions(audience=Audience.CLI, prune=True))
    markdown = md.render_markdown(document.to_document(plan))
    [row] = [line for line in markdown.splitlines() if "onerror" in line]
    assert len(re.split(r"(?<!\\)\|", row)) == 6, "four cells"
    html = markdown_it.MarkdownIt("commonmark").enable(["table", "strikethrough"]).render(markdown)
    parsed = _RowText()
    parsed.feed(html)
    [reason] = [cell for cell in parsed.cells if "onerror" in cell and "not declared" in cell]
    shown = reason.replace("\u200b", "")  # the zero-width space that breaks the autolink
    assert f"energy_meter {HOSTILE_MESSAGE_SN} on gateway home-zap is not declared" in shown
    assert set(parsed.tags_in_cells) <= {"code"}, parsed.tags_in_cells  # the address spans


def test_a_message_starting_like_a_block_stays_text_in_a_list_item() -> None:
    markdown_it = pytest.importorskip("markdown_it")
    for text in ("# heading", "> quote", "- item", "+ item", "12. item", "3) item"):
        escaped = md._md_escape(text)
        html = markdown_it.MarkdownIt("commonmark").render(f"- {escaped}\n")
        assert html == f"<ul>\n<li>{text.replace('>', '&gt;')}</li>\n</ul>\n", (text, html)


@pytest.mark.parametrize("text", [
    "serial @octocat", "@org/team", "owner/repo#12 and #7", "#1", "mail@example.com"])
def test_a_message_mentions_nobody_and_links_no_issue(text: str) -> None:
    """In a pull-request comment `@name` notifies that user and `#12` cross-links issue 12:
    a reported text shows as written, with a zero-width space breaking each reference."""
    markdown_it = pytest.importorskip("markdown_it")
    html = markdown_it.MarkdownIt("commonmark").render(f"- {md._md_escape(text)}\n")
    shown = re.fullmatch(r"<ul>\n<li>(.*)</li>\n</ul>\n", html)
    assert shown is not None, html
    assert shown[1].replace("\u200b", "") == text
    # What GitHub links: a sign directly followed by a name or a number.
    assert not re.search(r"[@#][A-Za-z0-9]", shown[1]), shown[1]


@pytest.mark.parametrize("text", [
    "cannot reach http://192.168.5.40:80/api", "see HTTPS://x.example and www.example.com",
    "ftp://files.example/a"])
def test_a_message_holds_no_link_github_would_make_of_a_url(text: str) -> None:
    """GitHub links a URL with a scheme, or starting www., in a comment on its own: a
    reported address shows as written, with a zero-width space breaking each."""
    markdown_it = pytest.importorskip("markdown_it")
    html = markdown_it.MarkdownIt("commonmark").render(f"- {md._md_escape(text)}\n")
    shown = re.fullmatch(r"<ul>\n<li>(.*)</li>\n</ul>\n", html)
    assert shown is not None, html
    assert shown[1].replace("\u200b", "") == text
    # What GFM autolinks: a scheme's colon directly followed by //, or "www.".
    assert not re.search(r"(?i)(https?|ftp)://|\bwww\.", shown[1]), shown[1]
