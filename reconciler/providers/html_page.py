"""What an HTML page that came as an API's answer says, in a few words. An error page of a
proxy or a load balancer in front of a gateway or a cloud (a 502 of nginx, a captive
portal, a cloud's maintenance page) is no API's error body: quoted, its first characters
are markup and scripts, never its reason. Its title says that reason (`502 Bad Gateway`),
else the text a browser would show."""

from __future__ import annotations

from collections.abc import Callable
from html.parser import HTMLParser

# Elements whose text a browser does not show as the page's.
_HIDDEN = frozenset({"script", "style", "noscript", "template", "svg", "head"})


class _Words(HTMLParser):
    """The page's title and its visible text, each on one line."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.title: list[str] = []
        self.text: list[str] = []
        self._open: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _HIDDEN or tag == "title":
            self._open.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag in self._open:
            # Close it and whatever was left open inside it (markup need not be well formed).
            del self._open[len(self._open) - 1 - self._open[::-1].index(tag):]

    def handle_data(self, data: str) -> None:
        if self._open and self._open[-1] == "title":
            self.title.append(data)
        elif not self._open:
            self.text.append(data)


def looks_like_html(text: str, content_type: str) -> bool:
    """Whether an answer is an HTML page: said so by its type, or starting as one does."""
    start = text.lstrip()[:15].lower()
    return "html" in content_type.lower() or start.startswith(("<!doctype html", "<html"))


def page_words(text: str, mask: Callable[[str], str] = str) -> str:
    """The title of the page in `text`, else its visible text, on one line ("" if none).
    `mask` takes the secrets out of that text as shown (its entities decoded) before its
    white space is folded: a secret spelt with two spaces is no longer one after."""
    words = _Words()
    words.feed(text)
    words.close()
    for part in (words.title, words.text):
        said = " ".join(mask(" ".join(part)).split())
        if said:
            return said
    return ""
