"""HTML (FHIR ``text/html`` attachments, HL7 ED ``HTML``) reduced to the text a reader sees. Pure.

The standard library's ``html.parser`` (a tolerant tokenizer: it never fetches, never runs
anything): character references are decoded, ``script``/``style``/``head``-like elements are
dropped with their content, block elements and ``<br>`` become line breaks, table cells are
separated by a space, runs of blanks collapse. No third-party parser is needed for this.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

_DROPPED = frozenset({"script", "style", "head", "title", "noscript", "template", "svg", "math"})
_BLOCKS = frozenset(
    {
        "address", "article", "aside", "blockquote", "details", "div", "dl", "fieldset",
        "figcaption", "figure", "footer", "form", "h1", "h2", "h3", "h4", "h5", "h6", "header",
        "hr", "main", "nav", "ol", "p", "pre", "section", "summary", "table", "tbody", "thead",
        "tfoot", "ul", "caption", "body", "html",
    }
)  # fmt: skip
_LINES = frozenset({"br", "li", "dt", "dd", "tr"})  # start a line, end nothing
_CELLS = frozenset({"td", "th"})
_MAX_NESTING = 1_000
_SPACES = re.compile(r"[ \t\f\v\u00a0]+")


class _Text(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._dropping: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _DROPPED:
            if len(self._dropping) < _MAX_NESTING:
                self._dropping.append(tag)
        elif self._dropping:
            return
        elif tag in _BLOCKS or tag in _LINES:
            self.parts.append("\n")
        elif tag in _CELLS:
            self.parts.append(" ")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in _DROPPED:
            self.handle_starttag(tag, attrs)

    def handle_endtag(self, tag: str) -> None:
        if self._dropping:
            if tag == self._dropping[-1]:
                self._dropping.pop()
            return
        if tag in _BLOCKS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self._dropping:
            self.parts.append(data)


def html_to_text(markup: str) -> str:
    """The text of ``markup``. Raises ``ValueError`` if the tokenizer gives up (callers turn
    it into their own reason code)."""
    parser = _Text()
    try:
        parser.feed(markup)
        parser.close()
    except (AssertionError, ValueError, IndexError):
        raise ValueError("HTML cannot be tokenized") from None
    lines = (_SPACES.sub(" ", line).strip() for line in "".join(parser.parts).splitlines())
    text = "\n".join(lines)
    return re.sub(r"\n{3,}", "\n\n", text).strip()
