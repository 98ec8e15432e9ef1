"""Reading gpuprof's HTML pages back with the standard library's parser (tests' side): the
tables per section (a numeric cell's exact ``data-v``, else its text), the elements, the
script blocks and every URL an attribute names."""

from __future__ import annotations

from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path

URL_ATTRIBUTES = {"src", "href", "action", "srcset", "poster", "data", "formaction"}


@dataclass
class Page:
    tables: dict[str, list[list[str]]] = field(default_factory=dict)   # section key -> rows
    headers: dict[str, list[str]] = field(default_factory=dict)
    tags: list[tuple[str, dict]] = field(default_factory=list)
    scripts: list[str] = field(default_factory=list)                    # each block's text
    urls: list[str] = field(default_factory=list)
    text: str = ""                                                      # all text, unescaped


class _Reader(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.page = Page()
        self.section: str | None = None
        self.cell: list[str] | None = None
        self.row: list[str] | None = None
        self.in_script = False
        self.in_th = False
        self.texts: list[str] = []

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        self.page.tags.append((tag, attributes))
        self.page.urls += [v for k, v in attrs if k in URL_ATTRIBUTES and v]
        if tag == "section" and "data-key" in attributes:
            self.section = attributes["data-key"]
        elif tag == "tr" and self.section:
            self.row = []
        elif tag in ("td", "th") and self.row is not None:
            self.cell = [] if "data-v" not in attributes else None
            if self.cell is None:
                self.row.append(attributes["data-v"])
            self.in_th = tag == "th"
        elif tag == "script":
            self.in_script = True
            self.page.scripts.append("")

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self.cell is not None and self.row is not None:
            self.row.append("".join(self.cell))
            self.cell = None
        elif tag == "tr" and self.row is not None and self.section:
            target = self.page.headers if self.in_th else self.page.tables
            if self.in_th:
                target[self.section] = self.row
            else:
                target.setdefault(self.section, []).append(self.row)
            self.row = None
            self.in_th = False
        elif tag == "section":
            self.section = None
        elif tag == "script":
            self.in_script = False

    def handle_data(self, data):
        if self.in_script:
            self.page.scripts[-1] += data
            return
        self.texts.append(data)
        if self.cell is not None:
            self.cell.append(data)


def read_page(path_or_text: str | Path) -> Page:
    text = Path(path_or_text).read_text(encoding="utf-8") if isinstance(path_or_text, Path) \
        else path_or_text
    reader = _Reader()
    reader.feed(text)
    reader.close()
    reader.page.text = "".join(reader.texts)
    return reader.page
