"""The doctor's answer on screen: one line per part of the machine (a fix line under what is
missing), then one line per command saying whether it runs fully, partly or not at all.

Made from ``capture.doctor.document``, the same data ``--json`` prints, so the two never differ.
"""

from __future__ import annotations

from typing import Any

MARKS = {"ok": "ok", "partial": "partly", "missing": "missing"}
READINESS = {"full": "runs fully", "partial": "runs partly", "no": "does not run"}
INDENT = "  "


def render_doctor(doc: dict[str, Any]) -> str:
    lines = [f"gpuprof doctor: what this machine has and what each command can do here "
             f"(schema {doc['schema_version']})"]
    lines += _checks(doc["checks"])
    titles = {check["name"]: check["title"] for check in doc["checks"]}
    lines += ["", "Commands"] + _commands(doc["commands"], titles)
    return "\n".join(lines) + "\n"


def _checks(checks: list[dict[str, Any]]) -> list[str]:
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
        lines.append(f"{INDENT}{MARKS[check['status']]:<{mark_width}} "
                     f"{check['title']:<{title_width}}  {check['detail']}")
        lines += [pad + note for note in check["notes"]]
        if check["fix"] and check["fix"] not in shown:
            shown.add(check["fix"])
            lines.append(f"{pad}fix: {check['fix']}")
    return lines


def _commands(commands: list[dict[str, Any]], titles: dict[str, str]) -> list[str]:
    usage_width = max((len(c["usage"]) for c in commands), default=0)
    pad = INDENT + " " * (usage_width + 2)
    lines: list[str] = []
    for command in commands:
        lines.append(f"{INDENT}{command['usage']:<{usage_width}}  {READINESS[command['readiness']]}")
        lines += [f"{pad}- {m['without']} (lacks: {', '.join(titles.get(n, n) for n in m['checks'])})"
                  for m in command["missing"]]
        lines += [f"{pad}fix: {fix}" for fix in command["fixes"]]
    return lines
