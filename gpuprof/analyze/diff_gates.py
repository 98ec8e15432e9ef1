"""`--fail-on` gates: ``CATEGORY.METRIC OP [+-]NUMBER UNIT``, e.g. ``layer.total>+10%``,
``latency.p99>+5%``, ``kernel.mean>+50us``.

A gate trips on a name present in both runs whose change passes the threshold and is not
noise: its bootstrap verdict is significant, or the runs hold no per-call samples to judge
with (trtexec's one mean per layer, load-test CSVs' statistics), where the threshold alone
decides. A name with a few samples (under ``MIN_SAMPLES`` a side) that passes the threshold is
listed as not judged, never failed: noise is not called a regression. A name in one run only
has no relative change and trips no gate; the report lists it.
"""

from __future__ import annotations

import operator
import re
from dataclasses import dataclass, field

import pandas as pd

from ..errors import BadInputError
from .diff import METRICS, Diff, significant
from .diff_samples import CATEGORIES

_GATE = re.compile(r"^\s*(?P<category>[a-z]+)\.(?P<metric>[a-z0-9]+)\s*(?P<op>>=|<=|>|<)\s*"
                   r"(?P<value>[+-]?\d+(?:\.\d+)?)\s*(?P<unit>%|ns|us|µs|ms)\s*$")
OPS = {">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le}
NS_PER_UNIT = {"ns": 1.0, "us": 1e3, "µs": 1e3, "ms": 1e6}
HINT = ("Write CATEGORY.METRIC OP NUMBER UNIT, e.g. 'layer.total>+10%' or 'latency.p99>+0.5ms'; "
        f"categories: {', '.join(CATEGORIES)}; metrics: {', '.join(METRICS)}; units: %, ns, us, ms")


@dataclass
class Gate:
    text: str
    category: str
    metric: str
    op: str
    threshold: float      # percent, or ns for absolute gates
    relative: bool


@dataclass
class GateResult:
    gate: Gate
    offending: pd.DataFrame = field(default_factory=pd.DataFrame)  # name, base, new, delta, pct, verdict
    unjudged: list[str] = field(default_factory=list)  # past the threshold on too few samples

    @property
    def tripped(self) -> bool:
        return not self.offending.empty


def parse_gate(text: str) -> Gate:
    match = _GATE.match(text)
    if match is None:
        raise BadInputError(f"cannot parse the gate '{text}'", HINT)
    category, metric, unit = match.group("category"), match.group("metric"), match.group("unit")
    if category not in CATEGORIES or metric not in METRICS:
        raise BadInputError(f"unknown {'category' if category not in CATEGORIES else 'metric'} in the gate '{text}'", HINT)
    value = float(match.group("value"))
    relative = unit == "%"
    return Gate(text.strip(), category, metric, match.group("op"), value if relative else value * NS_PER_UNIT[unit],
                relative)


def evaluate(gate: Gate, diff: Diff) -> GateResult:
    table = diff.tables.get(gate.category)
    if table is None:
        raise BadInputError(f"the gate '{gate.text}' has nothing to compare: the runs have no "
                            f"{gate.category} samples in common", f"Gate on one of: {', '.join(diff.tables) or 'nothing'}")
    both = table[table["status"] == "both"]
    column = f"delta_{gate.metric}_pct" if gate.relative else f"delta_{gate.metric}"
    compare = OPS[gate.op]
    rows, unjudged = [], []
    for _, row in both.iterrows():
        value = row[column]
        verdict = significant(row, gate.metric)
        if pd.isna(value) or not compare(value, gate.threshold) or verdict is False:
            continue
        if verdict is None and gate.category not in diff.unsampled:
            unjudged.append(str(row["name"]))
            continue
        rows.append({"name": row["name"], "base_ns": row[f"base_{gate.metric}"],
                         "new_ns": row[f"new_{gate.metric}"], "delta_ns": row[f"delta_{gate.metric}"],
                         "delta_pct": row[f"delta_{gate.metric}_pct"],
                         "verdict": "significant" if verdict else "no samples to judge"})
    return GateResult(gate, pd.DataFrame(rows), unjudged)

