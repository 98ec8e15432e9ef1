"""Terminal (rich), Markdown, CSV and JSON renderings of a ``Report``.

Names in tables (kernels, layers, NVTX ranges) are data from the profiled program: they are
shortened only in the terminal (CSV and JSON keep them whole), escaped in Markdown, and control
characters never reach a terminal, where they could move the cursor or change colours.
"""

from __future__ import annotations

import io
import json
import math
import os
import re

import pandas as pd

from ..errors import BadInputError
from .report import Report, Section

NAME_WIDTH = 56  # most terminal characters for a text cell (names are shortened to fit)
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>|~#!&])")


def printable(text: str) -> str:
    """``text`` with control characters (ESC, BEL, newlines, ...) shown as ``\\xNN``."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def shorten_name(text: str, width: int = NAME_WIDTH) -> str:
    """A long (C++ kernel) name cut to ``width`` characters, keeping what tells kernels apart.

    Tries, in order: the name; without ``void``, namespaces and the parameter list
    (``void at::native::k<at::native::Add<float> >(int)`` -> ``k<Add<float> >(…)``); with
    template arguments collapsed too (``k<…>(…)``); finally a middle ellipsis.
    """
    if len(text) <= width:
        return text
    for candidate in _simpler_names(text):
        if len(candidate) <= width:
            return candidate
    return _cut(_simpler_names(text)[-1], width)


def shorten_names(texts: list[str], width: int = NAME_WIDTH) -> list[str]:
    """``shorten_name`` for a column, keeping template arguments where collapsing them would
    make two different names look the same (``k<…>(…)`` twice)."""
    short = [shorten_name(t, width) for t in texts]
    clashes: dict[str, list[str]] = {}
    for original, cut in zip(texts, short, strict=True):
        clashes.setdefault(cut, [])
        if original not in clashes[cut]:
            clashes[cut].append(original)
    return [_distinct(t, clashes[cut], width) if len(clashes[cut]) > 1 else cut
            for t, cut in zip(texts, short, strict=True)]


_DELIMITERS = " <,(/"


def _distinct(text: str, group: list[str], width: int) -> str:
    """``text`` shown from where it starts to differ from the other names in ``group``:
    ``kernel<…Functor_add<float>…`` and ``kernel<…Functor_mul<float>…`` rather than
    ``kernel<…>(…)`` twice; ``…layer4.1/conv2/Conv…`` rather than ``/layer4/la…Relu`` twice."""
    plain = _simpler_names(text)[0]
    start = len(os.path.commonprefix([_simpler_names(t)[0] for t in group]))
    while start > 0 and plain[start - 1] not in _DELIMITERS:
        start -= 1
    if start < 8:  # they differ near the start, which an ordinary cut keeps
        return _cut(plain, width)
    base = plain.split("<", 1)[0] if "<" in plain[:start] else ""
    shown = (f"{base}<…" if base else "…") + plain[start:]
    return shown if len(shown) <= width else shown[:width - 1] + "…"


# noise in demangled names: namespaces and integer casts of template values ("(int)128")
_NAMESPACE = re.compile(r"\(anonymous namespace\)::|<unnamed>::|\b[A-Za-z_]\w*::")
_CAST = re.compile(r"\((?:unsigned |signed )?(?:int|long|long long|short|char|bool)\)")


def _simpler_names(text: str) -> list[str]:
    """Ever shorter forms of a C++ name: without noise, then with templates collapsed."""
    plain = _CAST.sub("", _NAMESPACE.sub("", text.removeprefix("void ")))
    if plain.endswith(")") and "(" in plain:
        plain = _collapse_last_parentheses(plain)
    return [plain, _collapse_brackets(plain)]


def _collapse_last_parentheses(text: str) -> str:
    """``f<T>(int, float*)`` -> ``f<T>(…)``: the parameter list says little about a kernel."""
    depth = 0
    for index in range(len(text) - 1, -1, -1):
        depth += {")": 1, "(": -1}.get(text[index], 0)
        if depth == 0:
            return text[:index] + "(…)"
    return text


def _cut(text: str, width: int) -> str:
    if len(text) <= width:
        return text
    head = (width - 1) * 2 // 3
    tail = width - 1 - head
    return text[:head] + "…" + (text[-tail:] if tail else "")


def _collapse_brackets(text: str) -> str:
    """Replace the contents of each outermost <...> and (...) with an ellipsis."""
    pairs = {"<": ">", "(": ")"}
    out: list[str] = []
    closing: list[str] = []  # closers expected, innermost last
    for char in text:
        if char in pairs:
            if not closing:
                out.append(char + "…")
            closing.append(pairs[char])
        elif closing and char == closing[-1]:
            closing.pop()
            if not closing:
                out.append(char)
        elif not closing:
            out.append(char)
    # unbalanced (e.g. "operator<"): collapsing would hide the rest, so keep the text
    return text if closing else "".join(out)


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
    return table if section.max_rows is None else table.head(section.max_rows)


def _truncation_note(section: Section) -> str | None:
    table = section.table
    if table is not None and section.max_rows is not None and len(table) > section.max_rows:
        return f"showing {section.max_rows} of {len(table)} rows; use --format csv/json for all"
    return None


def to_terminal(report: Report, width: int | None = None) -> str:
    from rich.console import Console
    from rich.padding import Padding

    columns = width or 120
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
        shown = _shown(section)
        if not shown.empty:
            table, hidden = _rich_table(shown, columns)
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


COLUMN_GAP = 3  # characters between two columns of a box.SIMPLE_HEAD table with padding 1
MIN_TEXT_WIDTH = 16
MIN_MAIN_WIDTH = 32


def _rich_table(shown: pd.DataFrame, width: int):
    """A table that fits ``width``: numbers are never cut (their headers wrap), names are
    shortened to the room left, and rightmost columns that still do not fit are dropped."""
    from rich import box
    from rich.table import Table

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
    columns = [[row[i] for row in cells] if numeric[i] else shorten_names(
        [row[i] for row in cells], widths[i]) for i in range(len(widths))]
    for row in zip(*columns, strict=True):
        table.add_row(*row)
    return table, headers[len(widths):]


def _column_widths(headers: list[str], numeric: list[bool], cells: list[list[str]],
                   width: int) -> list[int]:
    """Widths of the leading columns that fit in ``width``: numeric headers on one line when
    there is room, else wrapped at spaces; text columns share what is left."""
    longest = [max([len(r[i]) for r in cells] + [0]) for i in range(len(headers))]
    words = [max([len(w) for w in h.split()] + [1]) for h in headers]
    wanted = [0 if numeric[i] else min(max(longest[i], len(headers[i])), NAME_WIDTH)
              for i in range(len(headers))]
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


def _records(table: pd.DataFrame) -> list[dict]:
    return json.loads(table.to_json(orient="records", double_precision=15))


def to_json(report: Report) -> str:
    doc = {"title": report.title, "facts": report.facts, "sections": [
        {"key": s.key, "title": s.title, "notes": s.notes, "preformatted": s.preformatted,
         "rows": _records(s.table) if s.table is not None else []}
        for s in report.sections]}
    return json.dumps(doc, indent=1, ensure_ascii=False) + "\n"


def to_csv(report: Report, table: str | None = None) -> str:
    """CSV holds one table: ``table`` names it, else the report's first section with a table."""
    with_tables = [s for s in report.sections if s.table is not None]
    if not with_tables:
        raise BadInputError("this report has no table to write as CSV", "Use --format md or json")
    chosen = with_tables[0] if table is None else next(
        (s for s in with_tables if s.key == table), None)
    if chosen is None or chosen.table is None:
        keys = ", ".join(s.key for s in with_tables)
        raise BadInputError(f"no table '{table}' in this report", f"Choose one of: {keys}")
    return chosen.table.to_csv(index=False)
