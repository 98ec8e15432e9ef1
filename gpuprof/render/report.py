"""A report is an ordered list of sections; renderers turn it into text for one format.

Analysis code returns DataFrames with raw units (ns, bytes); the report builders in ``render``
choose display units and names. Renderers never compute: they only lay out what a ``Report``
holds, so every format shows the same numbers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from ..errors import BadInputError
from .formats import EXTENSIONS, FORMATS


@dataclass
class Section:
    key: str                            # stable machine name: "layers", "kernels", ...
    title: str                          # human title
    table: pd.DataFrame | None = None   # display-ready (units in column names)
    notes: list[str] = field(default_factory=list)  # sentences shown under the title
    max_rows: int | None = None         # rows shown in terminal/Markdown (None = all)
    # verbatim lines (ASCII art such as a timeline): never wrapped, escaped or re-flowed
    preformatted: list[str] = field(default_factory=list)
    # the rows for programs (JSON, CSV): raw units, snake_case keys (``machine.py``); None:
    # derived from ``table`` by renaming each display label to its machine key
    data: pd.DataFrame | None = None
    name_lists: tuple[str, ...] = ()    # columns whose cells list names ("a, b"), cut per name


@dataclass
class Report:
    title: str
    sections: list[Section] = field(default_factory=list)
    facts: dict[str, str] = field(default_factory=dict)  # shown as a header list: "GPU": "H100"
    kind: str = "report"    # the command that made it (nsys, engine, ...): JSON's "kind"
    # plots and the timeline only the HTML page shows (``html_visuals.Plot``/``Timeline``);
    # they hold no number a table lacks, so the text formats leave them out
    visuals: list = field(default_factory=list)

    def section(self, key: str) -> Section | None:
        return next((s for s in self.sections if s.key == key), None)

    def add(self, section: Section) -> Section:
        self.sections.append(section)
        return section


def format_for(path: str | Path | None, fmt: str | None) -> str:
    """The output format: an explicit ``fmt`` wins, else the file's extension, else terminal."""
    if fmt:
        if fmt not in FORMATS:
            raise BadInputError(f"unknown format '{fmt}'", f"Choose one of: {', '.join(FORMATS)}")
        return fmt
    if path is None:
        return "terminal"
    suffix = Path(path).suffix.lower()
    if suffix not in EXTENSIONS:
        raise BadInputError(
            f"cannot tell the format of '{Path(path).name}' from its extension",
            f"Use one of {', '.join(sorted(EXTENSIONS))} or pass --format",
        )
    return EXTENSIONS[suffix]


def render(report: Report, fmt: str, table: str | None = None, width: int | None = None,
           tty: bool | None = None) -> str:
    """``report`` in ``fmt``. A terminal rendering fits ``width`` columns, by default the
    terminal's when ``tty`` (default: stdout is one), and cuts nothing otherwise (pipes)."""
    from . import machine, text_formats

    if fmt == "terminal":
        return text_formats.to_terminal(report, width=width, tty=tty)
    if fmt == "md":
        return text_formats.to_markdown(report)
    if fmt == "json":
        return machine.to_json(report)
    if fmt == "csv":
        return machine.to_csv(report, table)
    if fmt == "html":
        from .html_report import to_html

        return to_html(report)
    raise BadInputError(f"unknown format '{fmt}'", f"Choose one of: {', '.join(FORMATS)}")


def write_report(report: Report, path: str | Path, fmt: str | None = None,
                 table: str | None = None) -> Path:
    from ..fsutil import atomic_write

    fmt = format_for(path, fmt)
    text = render(report, fmt, table=table, tty=False)  # a file: names never cut
    with atomic_write(path, "w", encoding="utf-8") as handle:
        handle.write(text)
    return Path(path)
