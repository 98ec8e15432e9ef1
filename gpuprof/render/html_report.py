"""A ``Report`` as one self-contained HTML page: summary first, then each section's table
(sortable by a header click, filterable by a search box, every row, full names wrapped), the
plots inlined as data: URIs and a zoomable timeline. Nothing is fetched when it is viewed.

Every string from a user's file (kernel, layer, model, file names) goes through
``html.escape``; the timeline's data is JSON in a ``<script type="application/json">`` with
``<``, ``>`` and ``&`` written as ``\\u003c``..., so ``</script>`` or ``<!--`` inside a name cannot
end the block. Cells show the same text as the Markdown report (``text_formats._cell``);
each numeric cell also carries its raw value (``data-v``) for sorting and for tests.
"""

from __future__ import annotations

import base64
import json
import math
import re
from html import escape

import pandas as pd

from .html_assets import CONTENT_POLICY, CSS, JS
from .html_visuals import Plot, Timeline
from .report import Report, Section
from .text_formats import _cell

_NUM = ' class="num"'
_LONG = ' class="long"'
LONG_NAME = 32  # characters: longer text cells may wrap anywhere
MAX_ROWS = 20000  # a table longer than this is cut in the page (CSV/JSON hold every row)
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def to_html(report: Report) -> str:
    parts = [_head(report.title), f"<h1>{_text(report.title)}</h1>", _facts(report.facts),
             _toc(report)]
    parts += [_section(i, s) for i, s in enumerate(report.sections)]
    parts += [_visual(i, v) for i, v in enumerate(report.visuals)]
    parts.append(f"<script>{JS}</script></body></html>\n")
    return "\n".join(p for p in parts if p)


def _text(value) -> str:
    """Text from the data, safe as HTML content or attribute value (control characters dropped)."""
    return escape(_CONTROL.sub(" ", str(value)), quote=True)


def _head(title: str) -> str:
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<meta http-equiv=\"Content-Security-Policy\" content=\"{CONTENT_POLICY}\">"
            "<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">"
            f"<title>{_text(title)}</title><style>{CSS}</style></head><body>")


def _facts(facts: dict[str, str]) -> str:
    if not facts:
        return ""
    rows = "".join(f"<dt>{_text(k)}</dt><dd>{_text(v)}</dd>" for k, v in facts.items())
    return f"<dl class=\"facts\" id=\"summary\">{rows}</dl>"


def _toc(report: Report) -> str:
    links = [f"<a href=\"#s{i}\">{_text(s.title)}</a>" for i, s in enumerate(report.sections)]
    links += [f"<a href=\"#v{i}\">{_text(_visual_title(v))}</a>"
              for i, v in enumerate(report.visuals)]
    return f"<nav class=\"toc\">{''.join(links)}</nav>" if links else ""


def _visual_title(visual) -> str:
    return visual.title if isinstance(visual, Plot) else "Timeline"


def _section(index: int, section: Section) -> str:
    parts = [f"<section id=\"s{index}\" data-key=\"{_text(section.key)}\">",
             f"<h2>{_text(section.title)}</h2>"]
    parts += [f"<p class=\"note\">{_text(n)}</p>" for n in section.notes]
    if section.preformatted:
        parts.append("<pre>" + "\n".join(_text(line) for line in section.preformatted) + "</pre>")
    if section.table is not None and len(section.table.columns):
        parts.append(_table(f"t{index}", section.table))
    parts.append("</section>")
    return "\n".join(parts)


def _table(table_id: str, table: pd.DataFrame) -> str:
    shown = table.head(MAX_ROWS)
    numeric = [pd.api.types.is_numeric_dtype(table[c]) and not pd.api.types.is_bool_dtype(table[c])
               for c in table.columns]
    head = "".join(f"<th{_NUM if num else ''} scope=\"col\">{_text(c)}</th>"
                   for c, num in zip(table.columns, numeric, strict=True))
    body = "\n".join("<tr>" + "".join(_td(v, num) for v, num in zip(row, numeric, strict=True))
                     + "</tr>" for row in shown.itertuples(index=False))
    cut = (f"<p class=\"note\">showing {MAX_ROWS} of {len(table)} rows; the CSV and JSON "
           "reports hold every row</p>") if len(table) > MAX_ROWS else ""
    return (f"<div><input class=\"filter\" id=\"{table_id}-filter\" type=\"search\" "
            f"placeholder=\"Filter rows\" aria-label=\"Filter rows\">"
            f"<span class=\"count\" id=\"{table_id}-count\">{len(shown)} rows</span></div>{cut}"
            f"<table class=\"data\" id=\"{table_id}\"><thead><tr>{head}</tr></thead>"
            f"<tbody>\n{body}\n</tbody></table>")


def _td(value, numeric: bool) -> str:
    if not numeric:
        text = _cell(value)
        # a long name (a C++ kernel) may wrap anywhere; short words (a layer type) stay whole
        return f"<td{_LONG if len(text) > LONG_NAME else ''}>{_text(text)}</td>"
    raw = _raw(value)
    return f"<td class=\"num\" data-v=\"{raw}\">{_text(_cell(value))}</td>"


def _raw(value) -> str:
    """The cell's exact value for sorting ('' when missing), as JSON writes numbers."""
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return ""
    return repr(float(value)) if isinstance(value, float) else str(value)


def _visual(index: int, visual) -> str:
    if isinstance(visual, Plot):
        data = base64.b64encode(visual.png).decode("ascii")
        return (f"<section id=\"v{index}\"><h2>{_text(visual.title)}</h2><figure>"
                f"<img alt=\"{_text(visual.title)}\" src=\"data:image/png;base64,{data}\">"
                f"{_caption(visual.caption)}</figure></section>")
    if isinstance(visual, Timeline):
        return _timeline(index, visual)
    raise TypeError(f"not a visual: {type(visual).__name__}")


def _caption(text: str) -> str:
    return f"<figcaption>{_text(text)}</figcaption>" if text else ""


def _timeline(index: int, timeline: Timeline) -> str:
    if not timeline.tracks:
        return ""
    names: dict[str, int] = {}  # each name once: a kernel name repeats thousands of times
    tracks = [{"name": t.name, "spans": [(start, length, names.setdefault(name, len(names)))
                                         for start, length, name in t.spans]}
              for t in timeline.tracks]
    data = {"end_ms": timeline.end_ms, "names": list(names), "tracks": tracks}
    notes = ["Wheel to zoom, drag to pan, double-click to see the whole run; times in ms "
             "from the run's time zero.", *timeline.notes]
    return "\n".join([
        f"<section id=\"v{index}\"><h2>Timeline</h2>",
        *(f"<p class=\"note\">{_text(n)}</p>" for n in notes),
        f"<script type=\"application/json\" id=\"v{index}-data\">{script_json(data)}</script>",
        f"<div class=\"timeline\" data-source=\"v{index}-data\"><canvas></canvas>"
        "<div class=\"tip\"></div></div></section>"])


def script_json(data) -> str:
    """JSON safe inside a <script> element: no ``<``, ``>`` or ``&`` (so no ``</script>`` or
    ``<!--``), and no U+2028/U+2029, which older parsers treat as line ends."""
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    for char, code in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"),
                       ("\u2028", "\\u2028"), ("\u2029", "\\u2029")):
        text = text.replace(char, code)
    return text
