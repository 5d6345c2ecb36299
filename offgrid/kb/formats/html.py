"""HTML, read with the standard library's tolerant parser: headings (h1-h6, with levels),
paragraphs, list items, pre blocks (verbatim) and table rows (cells joined by " | ") become
blocks; what is not the document's content is dropped: script, style, template, noscript, svg,
navigation (nav, header, footer, aside, role="navigation", nav and table-of-contents classes)
and the head but its title. Entities are decoded; whitespace collapses except in pre.

The parser keeps a stack of the open elements that matter (block-level and dropped ones;
inline elements are not tracked), each entry carrying what its content is, so that every tag
costs O(1) and a deeply nested page costs memory in proportion to its size, never recursion."""

from __future__ import annotations

from dataclasses import dataclass
from html.parser import HTMLParser

from ..document import Builder, one_line

_DROPPED = {"script", "style", "template", "noscript", "svg", "math", "nav", "aside", "head",
            "iframe", "object", "select", "button", "canvas", "audio", "video"}
_DROPPED_ROLES = {"navigation", "banner", "contentinfo", "complementary", "search"}
_DROPPED_CLASSES = {"nav", "navbar", "navheader", "navfooter", "navigation", "breadcrumb",
                    "breadcrumbs", "toc", "skip-link", "sidebar"}
_HEADINGS = {f"h{n}": n for n in range(1, 7)}
_KINDS = {**dict.fromkeys(_HEADINGS, "heading"), "pre": "code", "li": "list_item",
          "dt": "list_item", "dd": "list_item", "tr": "table_row"}
_BLOCKS = {"address", "article", "blockquote", "body", "caption", "center", "details",
           "dialog", "dir", "div", "dl", "fieldset", "figcaption", "figure", "form", "hgroup",
           "hr", "html", "legend", "main", "menu", "ol", "p", "section", "summary", "table",
           "tbody", "tfoot", "thead", "ul", "td", "th", *_KINDS}
_CELLS = {"td", "th"}
# Elements that never have content or an end tag.
_VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "param",
         "source", "track", "wbr"}


@dataclass(frozen=True)
class _Open:
    tag: str
    kind: str  # what text inside it is: a BLOCK_KINDS name
    level: int = 0
    dropped: bool = False


_ROOT = _Open("", "paragraph")


def read(text: str, out: Builder) -> None:
    parser = _Parser(out)
    parser.feed(text)
    parser.close()
    parser.flush(parser.top)
    out.title = out.title or (one_line("".join(parser.title)) or None)


class _Parser(HTMLParser):
    def __init__(self, out: Builder):
        super().__init__(convert_charrefs=True)
        self.out = out
        self.stack: list[_Open] = [_ROOT]
        self.open_count: dict[str, int] = {}  # tag -> how many on the stack: O(1) end tags
        self.text: list[str] = []
        self.title: list[str] = []
        self.in_title = False
        self.cell_has_text = False  # since the last cell separator

    # -- tags --

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if self.in_title or tag == "title":
            self.in_title = tag == "title" and not self.title
            return
        if tag == "br":
            self.handle_data("\n" if self.top.kind == "code" else " ")
            return
        dropped = self._drops(tag, attrs)
        if tag in _VOID or not (dropped or tag in _BLOCKS):
            return
        top = self.top
        if tag in _CELLS and top.kind == "table_row":
            if self.cell_has_text:  # empty cells add no separator
                self.text.append(" | ")
                self.cell_has_text = False
        elif not self._inside_block(top):
            self.flush(top)
        kind = _KINDS.get(tag)
        if kind is None or self._inside_block(top) or top.tag in ("tr", "pre"):
            self._push(_Open(tag, top.kind, top.level, top.dropped or dropped))
        else:
            self._push(_Open(tag, kind, _HEADINGS.get(tag, 0), top.dropped or dropped))

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self.in_title = False
            return
        if not self.open_count.get(tag):
            return  # never opened, or inline: nothing to close
        innermost = self.top
        while True:  # closes what was left open inside it, as browsers do
            closed = self.stack.pop()
            self.open_count[closed.tag] -= 1
            if closed.tag == tag:
                break
        if tag not in _CELLS and not self._inside_block(closed):
            self.flush(innermost)

    def handle_data(self, data: str) -> None:
        if self.in_title:
            self.title.append(data)
        elif not self.top.dropped:
            self.text.append(data)
            self.cell_has_text = self.cell_has_text or not data.isspace()

    # -- blocks --

    @property
    def top(self) -> _Open:
        return self.stack[-1]

    def _push(self, entry: _Open) -> None:
        self.stack.append(entry)
        self.open_count[entry.tag] = self.open_count.get(entry.tag, 0) + 1

    @staticmethod
    def _inside_block(entry: _Open) -> bool:
        """An element inside a table row or a pre: these stay one block, whatever they hold."""
        return entry.kind in ("table_row", "code") and entry.tag not in ("tr", "pre")

    def _drops(self, tag: str, attrs: list[tuple[str, str | None]]) -> bool:
        if tag in ("header", "footer"):  # page chrome, unless an article's own
            inside = any(self.open_count.get(t) for t in ("article", "main", "section"))
            return not inside or _dropped_by(attrs)
        return tag in _DROPPED or _dropped_by(attrs)

    def flush(self, where: _Open) -> None:
        """The text since the last block boundary, as a block of the kind it was inside."""
        if not self.text:
            return
        text = "".join(self.text)
        self.text = []
        self.cell_has_text = False
        if where.kind == "code":
            self.out.add("code", text.strip("\n").rstrip())
        else:
            self.out.add(where.kind, one_line(text), where.level)


def _dropped_by(attrs: list[tuple[str, str | None]]) -> bool:
    for name, value in attrs:
        if name == "role" and value in _DROPPED_ROLES:
            return True
        if name == "class" and value and not _DROPPED_CLASSES.isdisjoint(value.lower().split()):
            return True
        if name == "hidden" or name == "aria-hidden" and value == "true":
            return True
    return False
