"""The doctor's answer on screen: one line per part of the machine (a fix line under what is
missing), then one line per command saying whether it runs fully, partly or not at all.

Made from ``capture.doctor.document``, the same data ``--json`` prints, so the two never differ.
On a terminal, long lines wrap at its width under their column; elsewhere (a pipe, a file)
nothing is wrapped or cut.
"""

from __future__ import annotations

import textwrap
from typing import Any

MARKS = {"ok": "ok", "partial": "partly", "missing": "missing"}
READINESS = {"full": "runs fully", "partial": "runs partly", "no": "does not run"}
INDENT = "  "


def render_doctor(doc: dict[str, Any], width: int | None = None) -> str:
    lines = [f"gpuprof doctor (schema {doc['schema_version']}): this machine, and what each command "
             "can do here"]
    lines += _checks(doc["checks"], width)
    titles = {check["name"]: check["title"] for check in doc["checks"]}
    lines += ["", "Commands"] + _commands(doc["commands"], titles, width)
    return "\n".join(lines) + "\n"


def _checks(checks: list[dict[str, Any]], width: int | None) -> list[str]:
    title_width = max((len(c["title"]) for c in checks), default=0)
    mark_width = max(map(len, MARKS.values()))
    pad = INDENT + " " * (mark_width + 1 + title_width + 2)
    lines: list[str] = []
    group = None
    shown: set[str] = set()  # a fix shared by several parts (the driver) is said once
    for check in checks:
        if check["group"] != group:
            group = check["group"]
            lines += ["", group]
        lead = f"{INDENT}{MARKS[check['status']]:<{mark_width}} {check['title']:<{title_width}}  "
        lines += _wrap(lead, pad, check["detail"], width)
        for note in check["notes"]:
            lines += _wrap(pad, pad, note, width)
        if check["fix"] and check["fix"] not in shown:
            shown.add(check["fix"])
            lines += _wrap(pad, pad, f"fix: {check['fix']}", width)
    return lines


def _commands(commands: list[dict[str, Any]], titles: dict[str, str], width: int | None) -> list[str]:
    usage_width = max((len(c["usage"]) for c in commands), default=0)
    pad = INDENT + " " * (usage_width + 2)
    lines: list[str] = []
    for command in commands:
        lines.append(f"{INDENT}{command['usage']:<{usage_width}}  {READINESS[command['readiness']]}")
        for missing in command["missing"]:
            lacks = ", ".join(titles.get(name, name) for name in missing["checks"])
            lines += _wrap(pad, pad, f"- {missing['without']} (lacks: {lacks})", width)
        for fix in command["fixes"]:
            lines += _wrap(pad, pad, f"fix: {fix}", width)
    return lines


def _wrap(lead: str, pad: str, text: str, width: int | None) -> list[str]:
    """``lead + text`` on one line, or wrapped at ``width`` with ``pad`` before each further
    line; words (paths, package names, URLs) are never broken."""
    if width is None or len(lead) + len(text) <= width:
        return [lead + text]
    return textwrap.wrap(text, width=width, initial_indent=lead, subsequent_indent=pad,
                         break_long_words=False, break_on_hyphens=False) or [lead.rstrip()]
