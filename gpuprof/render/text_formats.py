"""Terminal (rich) and Markdown renderings of a ``Report`` (CSV and JSON: ``machine.py``).

Names in tables (kernels, layers, NVTX ranges) are data from the profiled program: they are
cut only to fit a terminal's width (``names.fit_names``; pipes, files, CSV and JSON keep them
whole), escaped in Markdown, and control characters never reach a terminal, where they could
move the cursor or change colours.
"""

from __future__ import annotations

import io
import math
import re
import shutil
import sys

import pandas as pd

from .names import fit_name_lists, fit_names
from .report import Report, Section

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>|~#!&])")


def printable(text: str) -> str:
    """``text`` with control characters (ESC, BEL, newlines, ...) shown as ``\\xNN``."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def _cell(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return "-"
    if isinstance(value, float):
        if value == 0:
            return "0"
        mag = abs(value)
        return f"{value:,.0f}" if mag >= 1000 else f"{value:.3g}" if mag < 0.01 else f"{value:.2f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _shown(section: Section) -> pd.DataFrame:
    table = section.table
    if table is None:
        return pd.DataFrame()
    return readable_units(table if section.max_rows is None else table.head(section.max_rows))


# a table's µs columns are shown in ms, and its ms columns in s, when their values are mostly
# this large or more: 12,345,678 µs reads better as 12,346 ms (machine formats keep raw units)
READABLE_LIMIT = 10_000
_UNIT = {"µs": ("ms", 1000.0), "ms": ("s", 1000.0)}


def readable_units(table: pd.DataFrame) -> pd.DataFrame:
    """``table`` with every column in µs (header naming the unit as a word) in ms when the
    median of those columns' values is at least ``READABLE_LIMIT``; then the same from ms to
    s. A table's columns of one unit change together, so percentiles stay comparable."""
    for unit, (bigger, factor) in _UNIT.items():
        columns = [c for c in table.columns if isinstance(c, str) and _names_unit(c, unit)
                   and pd.api.types.is_numeric_dtype(table[c])]
        values = pd.concat([table[c] for c in columns]).abs().dropna() if columns else []
        if not len(values) or values.median() < READABLE_LIMIT:
            continue
        renamed = {c: re.sub(rf"(?<![\w]){unit}(?![\w])", bigger, c) for c in columns}
        table = table.assign(**{c: table[c] / factor for c in columns}).rename(columns=renamed)
    return table


def _names_unit(header: str, unit: str) -> bool:
    return re.search(rf"(?<![\w]){unit}(?![\w])", header) is not None


def _truncation_note(section: Section) -> str | None:
    table = section.table
    if table is not None and section.max_rows is not None and len(table) > section.max_rows:
        return f"showing {section.max_rows} of {len(table)} rows; use --format csv/json for all"
    return None


def terminal_width(tty: bool | None = None) -> int | None:
    """The columns to fit: the terminal's own width when the output is one (``COLUMNS`` wins,
    as in ``shutil.get_terminal_size``), None (never cut) for pipes and files."""
    if tty is None:
        tty = sys.stdout.isatty()
    return shutil.get_terminal_size().columns if tty else None


def to_terminal(report: Report, width: int | None = None, tty: bool | None = None) -> str:
    """``report`` as plain text. ``width`` (default: ``terminal_width(tty)``) is the most
    columns a line takes; with no width (pipes, files) tables are as wide as their names."""
    from rich.console import Console
    from rich.padding import Padding

    width = width if width is not None else terminal_width(tty)
    tables = {id(s): _rich_table(s, width) for s in report.sections if not _shown(s).empty}
    columns = width or max([NOTE_WIDTH] + [t[2] for t in tables.values()])
    buf = io.StringIO()
    console = Console(file=buf, width=columns, force_terminal=False, color_system=None,
                      highlight=False, markup=False, emoji=False)
    console.print(printable(report.title), style="bold")
    for key, value in report.facts.items():
        console.print(Padding(printable(f"{key}: {value}"), (0, 0, 0, 2)))
    for section in report.sections:
        console.print()
        console.print(printable(section.title), style="bold")
        for note in section.notes:
            console.print(Padding(printable(note), (0, 0, 0, 2)))
        for line in section.preformatted:
            console.print(printable("  " + line), soft_wrap=True)
        if id(section) in tables:
            table, hidden, _ = tables[id(section)]
            console.print(table)
            if hidden:
                plural = "s" if len(hidden) > 1 else ""
                console.print(Padding(f"({len(hidden)} column{plural} did not fit: "
                                      f"{', '.join(hidden)}; widen the terminal or use "
                                      "--format md/csv/json)", (0, 0, 0, 2)))
        truncation = _truncation_note(section)
        if truncation:
            console.print(f"  ({truncation})")
    return "\n".join(line.rstrip() for line in buf.getvalue().splitlines()) + "\n"


NOTE_WIDTH = 120  # where notes wrap when nothing else sets a width (pipes, files)
COLUMN_GAP = 3  # characters between two columns of a box.SIMPLE_HEAD table with padding 1
MIN_TEXT_WIDTH = 16
MIN_MAIN_WIDTH = 32


def _rich_table(section: Section, width: int | None):
    """The section's shown rows as a table that fits ``width`` (None: as wide as it needs),
    the headers of the columns that did not fit, and the table's width. Numbers are never cut
    (their headers wrap); names are cut to the room left by ``names.fit_names``, which keeps
    them apart; rightmost columns that still do not fit are dropped."""
    from rich import box
    from rich.table import Table

    shown = _shown(section)
    headers = [printable(str(c)) for c in shown.columns]
    numeric = [pd.api.types.is_numeric_dtype(shown[c]) for c in shown.columns]
    cells = [[_cell(v) if is_number else printable(_cell(v))
              for v, is_number in zip(row, numeric, strict=True)]
             for row in shown.itertuples(index=False)]
    widths = _column_widths(headers, numeric, cells, width)
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    for index, column_width in enumerate(widths):
        table.add_column(headers[index], justify="right" if numeric[index] else "left",
                         width=column_width, no_wrap=not numeric[index])
    columns = [[row[i] for row in cells] if numeric[i] else _fit_column(
        [row[i] for row in cells], widths[i], str(shown.columns[i]) in section.name_lists)
        for i in range(len(widths))]
    for row in zip(*columns, strict=True):
        table.add_row(*row)
    return table, headers[len(widths):], sum(widths) + COLUMN_GAP * (len(widths) - 1)


def _fit_column(cells: list[str], width: int, is_list: bool) -> list[str]:
    return fit_name_lists(cells, width) if is_list else fit_names(cells, width)


def _column_widths(headers: list[str], numeric: list[bool], cells: list[list[str]],
                   width: int | None) -> list[int]:
    """Widths of the leading columns that fit in ``width`` (None: every column whole):
    numeric headers on one line when there is room, else wrapped at spaces; text columns
    share what is left."""
    longest = [max([len(r[i]) for r in cells] + [0]) for i in range(len(headers))]
    words = [max([len(w) for w in h.split()] + [1]) for h in headers]
    wanted = [max(longest[i], len(headers[i])) for i in range(len(headers))]
    if width is None:
        return wanted
    wanted = [0 if numeric[i] else wanted[i] for i in range(len(headers))]
    for header_width in ([len(h) for h in headers], words):
        fixed = [max(longest[i], header_width[i]) if numeric[i] else 0
                 for i in range(len(headers))]
        for count in range(len(headers), 0, -1):
            room = width - sum(fixed[:count]) - COLUMN_GAP * (count - 1)
            texts = [i for i in range(count) if not numeric[i]]
            fits_whole = room >= sum(wanted[i] for i in texts)
            if fits_whole or (header_width is words and room >= sum(
                    _floor(i, texts, wanted) for i in texts)):
                text_widths = _share(texts, wanted, room)
                return [fixed[i] if numeric[i] else text_widths[i] for i in range(count)]
            if header_width is not words:
                break  # headers on one line do not fit: try wrapped headers first
    return [min(max(longest[0], words[0]), width)]


def _share(texts: list[int], wanted: list[int], room: int) -> dict[int, int]:
    """Room for each text column: the first (the name a table is about: layer, kernel, range)
    takes what it wants, leaving the others their floor; the others then do the same in turn."""
    widths: dict[int, int] = {}
    for n, index in enumerate(texts):
        later_floors = sum(_floor(j, texts, wanted) for j in texts[n + 1:])
        widths[index] = max(_floor(index, texts, wanted), min(wanted[index], room - later_floors))
        room -= widths[index]
    return widths


def _floor(index: int, texts: list[int], wanted: list[int]) -> int:
    """Fewest characters a text column keeps; columns to the right are dropped before the
    table's main name (its first text column) gets narrower than MIN_MAIN_WIDTH."""
    return min(wanted[index], MIN_MAIN_WIDTH if index == texts[0] else MIN_TEXT_WIDTH)


def _md_escape(text: str) -> str:
    """Names are data: a ``<float>`` or ``*`` in a kernel name must not become HTML or emphasis."""
    flat = _CONTROL.sub(" ", text)
    return _MD_SPECIAL.sub(r"\\\1", flat)


def to_markdown(report: Report) -> str:
    lines = [f"# {_md_escape(report.title)}", ""]
    lines += [f"- **{_md_escape(k)}**: {_md_escape(str(v))}" for k, v in report.facts.items()]
    for section in report.sections:
        lines += ["", f"## {_md_escape(section.title)}", ""]
        lines += [_md_escape(n) + "  " for n in section.notes]
        if section.preformatted:
            # a fenced block shows the lines as they are; only a fence inside could end it
            lines += ["", "```text", *(_CONTROL.sub(" ", ln).replace("```", "'''")
                                       for ln in section.preformatted), "```"]
        shown = _shown(section)
        if not shown.empty:
            if section.notes:
                lines.append("")
            lines.append("| " + " | ".join(_md_escape(str(c)) for c in shown.columns) + " |")
            lines.append("|" + "|".join("---:" if pd.api.types.is_numeric_dtype(shown[c]) else "---"
                                        for c in shown.columns) + "|")
            for row in shown.itertuples(index=False):
                lines.append("| " + " | ".join(_md_escape(_cell(v)) for v in row) + " |")
        note = _truncation_note(section)
        if note:
            lines += ["", f"_({note})_"]
    return "\n".join(lines) + "\n"
