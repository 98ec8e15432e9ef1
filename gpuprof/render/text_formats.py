"""Terminal (rich), Markdown, CSV and JSON renderings of a ``Report``."""

from __future__ import annotations

import io
import json
import math

import pandas as pd

from ..errors import BadInputError
from .report import Report, Section


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
    from rich import box
    from rich.console import Console
    from rich.table import Table

    buf = io.StringIO()
    console = Console(file=buf, width=width or 120, force_terminal=False, color_system=None,
                      highlight=False, markup=False, emoji=False)
    console.print(report.title, style="bold")
    for key, value in report.facts.items():
        console.print(f"  {key}: {value}")
    for section in report.sections:
        console.print()
        console.print(section.title, style="bold")
        for note in section.notes:
            console.print(f"  {note}")
        shown = _shown(section)
        if not shown.empty:
            table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
            for col in shown.columns:
                numeric = pd.api.types.is_numeric_dtype(shown[col])
                table.add_column(str(col), justify="right" if numeric else "left",
                                 overflow="ellipsis", max_width=60 if not numeric else None)
            for row in shown.itertuples(index=False):
                table.add_row(*(_cell(v) for v in row))
            console.print(table)
        note = _truncation_note(section)
        if note:
            console.print(f"  ({note})")
    return buf.getvalue()


def _md_escape(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def to_markdown(report: Report) -> str:
    lines = [f"# {_md_escape(report.title)}", ""]
    lines += [f"- **{_md_escape(k)}**: {_md_escape(str(v))}" for k, v in report.facts.items()]
    for section in report.sections:
        lines += ["", f"## {_md_escape(section.title)}", ""]
        lines += [_md_escape(n) + "  " for n in section.notes]
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
        {"key": s.key, "title": s.title, "notes": s.notes,
         "rows": _records(s.table) if s.table is not None else []}
        for s in report.sections]}
    return json.dumps(doc, indent=1, ensure_ascii=False) + "\n"


def to_csv(report: Report, table: str | None = None) -> str:
    """CSV holds one table: ``table`` names it, else the report's first section with a table."""
    with_tables = [s for s in report.sections if s.table is not None]
    if not with_tables:
        raise BadInputError("this report has no table to write as CSV", "Use --format md or json")
    if table is None:
        chosen = with_tables[0]
    else:
        chosen = next((s for s in with_tables if s.key == table), None)
        if chosen is None:
            keys = ", ".join(s.key for s in with_tables)
            raise BadInputError(f"no table '{table}' in this report", f"Choose one of: {keys}")
    return chosen.table.to_csv(index=False)
