"""The text of education items: plain text with a few marks, rendered to safe HTML.

Staff write articles in a small markup, never HTML:

- a blank line separates paragraphs;
- ``# Heading`` and ``## Smaller heading`` on their own line;
- lines starting with ``- `` or ``* `` make a bulleted list, ``1. `` a numbered one;
- ``**bold**``;
- ``[words](https://...)`` a link (https only; anything else stays text).

Every character the author typed is HTML-escaped before any mark is turned into a tag, and the
only tags produced are the fixed ones above, so what an author types can never become markup
or script (stored XSS).
"""

from __future__ import annotations

import re
from html import escape

from django.utils.safestring import SafeString, mark_safe

_LINK = re.compile(r"\[([^\]\n]{1,200})\]\((https://[^\s()<>\"']{1,400})\)")
_BOLD = re.compile(r"\*\*([^*\n]{1,300})\*\*")
_BULLET = re.compile(r"^\s*[-*]\s+(.*)$")
_NUMBER = re.compile(r"^\s*\d{1,3}[.)]\s+(.*)$")
_HEADING = re.compile(r"^(#{1,2})\s+(.*)$")


def _bold(text: str) -> str:
    """Escape a run of text and turn **x** into <strong>x</strong>."""
    out: list[str] = []
    last = 0
    for m in _BOLD.finditer(text):
        out.append(escape(text[last : m.start()]))
        out.append(f"<strong>{escape(m.group(1))}</strong>")
        last = m.end()
    out.append(escape(text[last:]))
    return "".join(out)


def inline(text: str) -> str:
    """One line of text, escaped, with bold and https links."""
    out: list[str] = []
    last = 0
    for m in _LINK.finditer(text):
        out.append(_bold(text[last : m.start()]))
        href = escape(m.group(2), quote=True)
        out.append(
            f'<a href="{href}" rel="noopener noreferrer nofollow" target="_blank">'
            f"{_bold(m.group(1))}</a>"
        )
        last = m.end()
    out.append(_bold(text[last:]))
    return "".join(out)


def render(source: str) -> SafeString:
    """The body of an item as HTML made only of p, h2, h3, ul, ol, li, strong and a."""
    blocks: list[str] = []
    lines = (source or "").replace("\r\n", "\n").replace("\r", "\n").split("\n")
    paragraph: list[str] = []
    items: list[str] = []
    list_tag = ""

    def flush_paragraph() -> None:
        if paragraph:
            blocks.append("<p>" + "<br>".join(inline(x) for x in paragraph) + "</p>")
            paragraph.clear()

    def flush_list() -> None:
        nonlocal list_tag
        if items:
            body = "".join(f"<li>{inline(x)}</li>" for x in items)
            blocks.append(f"<{list_tag}>{body}</{list_tag}>")
            items.clear()
        list_tag = ""

    for raw in lines:
        line = raw.rstrip()
        if not line.strip():
            flush_paragraph()
            flush_list()
            continue
        heading = _HEADING.match(line)
        bullet = _BULLET.match(line)
        number = _NUMBER.match(line)
        if heading:
            flush_paragraph()
            flush_list()
            tag = "h2" if len(heading.group(1)) == 1 else "h3"
            blocks.append(f"<{tag}>{inline(heading.group(2))}</{tag}>")
        elif bullet or number:
            flush_paragraph()
            wanted = "ul" if bullet else "ol"
            if list_tag and list_tag != wanted:
                flush_list()
            list_tag = wanted
            items.append((bullet or number).group(1))  # type: ignore[union-attr]
        else:
            flush_list()
            paragraph.append(line.strip())
    flush_paragraph()
    flush_list()
    return mark_safe("\n".join(blocks))  # noqa: S308 - built only from escaped text and fixed tags


def plain(source: str, limit: int = 160) -> str:
    """A short plain-text excerpt (list cards, search results)."""
    text = _LINK.sub(lambda m: m.group(1), source or "")
    text = re.sub(r"(?m)^\s*(?:[-*]|\d{1,3}[.)])\s+", "", text)
    text = re.sub(r"[#*]+", "", text)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"
