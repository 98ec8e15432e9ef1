"""Reports for programs: JSON and CSV with snake_case keys that carry their unit.

One mapping from a report to machine keys, for every command. A section built from an
analysis DataFrame hands its raw columns over as ``Section.data`` (``total_ns``, ``peak_bytes``,
``share`` as a fraction: the analysis' own names and units, full precision); any other section's
display table is renamed label by label (``machine_key``: "Mean (µs)" -> ``mean_us``, "% GPU" ->
``gpu_percent``), its values unrounded in the label's unit. Not measured is ``null`` (NaN, NA,
None, and the display's "" and "-" alike), never 0 or "". The layout is documented in docs/JSON.md; change
``SCHEMA_VERSION`` when a key changes meaning or goes away.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
import unicodedata

import numpy as np
import pandas as pd

from ..errors import BadInputError
from .report import Report, Section

SCHEMA_VERSION = 1
NOT_MEASURED_TEXT = {"", "-"}  # what display tables write for a value that is not there
_NOT_KEY = re.compile(r"[^a-z0-9]+")


def machine_key(label: str) -> str:
    """A display label as a snake_case ASCII key with its unit: "Total (ms)" -> ``total_ms``,
    "Min size (B)" -> ``min_size_bytes``, "Bandwidth (GB/s)" -> ``bandwidth_gb_per_s``."""
    text = str(label).strip().replace("µs", "us").replace("μs", "us").replace("(B)", "(bytes)")
    if text.startswith("%"):
        text = text[1:] + " percent"  # "% GPU" -> gpu_percent
    text = text.replace("%", " percent ").replace("/", " per ").replace("#", " number ")
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return _NOT_KEY.sub("_", ascii_text.lower()).strip("_") or "value"


def machine_table(section: Section) -> pd.DataFrame | None:
    """The section's rows for programs: ``Section.data`` if given, else its display table with
    machine keys (a key two labels share gets ``_2``, ...)."""
    frame = section.data if section.data is not None else section.table
    if frame is None:
        return None
    keys: list[str] = []
    for column in frame.columns:
        key = base = machine_key(column)
        count = 2
        while key in keys:
            key, count = f"{base}_{count}", count + 1
        keys.append(key)
    out = frame.copy(deep=False)
    out.columns = keys
    return out


def json_value(value):
    """One cell as JSON: numbers whole (numpy to Python), not measured as None."""
    if isinstance(value, (list, tuple, np.ndarray)):
        return [json_value(v) for v in value]
    if value is None or value is pd.NA or value is pd.NaT or (
            isinstance(value, str) and value in NOT_MEASURED_TEXT):
        return None
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return None if not math.isfinite(value) else float(value)
    if isinstance(value, (pd.Timestamp, dt.datetime)):
        return value.isoformat()
    if isinstance(value, pd.Timedelta):
        return int(value.value)  # ns
    return value if isinstance(value, str) else str(value)


def records(frame: pd.DataFrame) -> list[dict]:
    columns = [str(c) for c in frame.columns]
    return [{c: json_value(v) for c, v in zip(columns, row, strict=True)}
            for row in frame.itertuples(index=False, name=None)]


def to_json(report: Report) -> str:
    """The whole report: every row of every section (``max_rows`` limits only terminal and
    Markdown views)."""
    doc = {"schema_version": SCHEMA_VERSION, "kind": report.kind, "title": report.title,
           "facts": {machine_key(k): v for k, v in report.facts.items()},
           "sections": [_section(s) for s in report.sections]}
    return json.dumps(doc, indent=1, ensure_ascii=False) + "\n"


def _section(section: Section) -> dict:
    rows = machine_table(section)
    return {"key": section.key, "title": section.title, "notes": section.notes,
            "preformatted": section.preformatted,
            "rows": records(rows) if rows is not None else []}


def to_csv(report: Report, table: str | None = None) -> str:
    """CSV holds one table: ``table`` names it, else the report's first section with a table.
    Same keys and values as the JSON rows; not measured is an empty cell."""
    with_tables = [s for s in report.sections if s.table is not None]
    if not with_tables:
        raise BadInputError("this report has no table to write as CSV", "Use --format md or json")
    chosen = with_tables[0] if table is None else next(
        (s for s in with_tables if s.key == table), None)
    if chosen is None:
        keys = ", ".join(s.key for s in with_tables)
        raise BadInputError(f"no table '{table}' in this report", f"Choose one of: {keys}")
    frame = machine_table(chosen)
    assert frame is not None
    # lists (a layer's top kernels) as one cell each, as the terminal shows them
    frame = frame.apply(lambda col: col.map(_csv_cell) if col.dtype == object else col)
    return frame.to_csv(index=False)


def _csv_cell(value):
    if isinstance(value, (list, tuple, np.ndarray)):
        return "; ".join(str(v) for v in value)
    return value
