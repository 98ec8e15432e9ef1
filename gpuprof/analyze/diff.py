"""Two runs compared name by name: absolute and relative deltas, and whether each is more than
noise.

Significance comes from the per-call samples: a percentile bootstrap (numpy, fixed seed, so the
same inputs give the same verdict) of the difference new - base of each statistic (mean, p50,
p90, p99); a change is significant when its 95% interval excludes 0. A name with fewer than
``MIN_SAMPLES`` calls on either side has no verdict (``None``): a bootstrap of so few values
is no evidence either way. The totals' verdict is the mean's (total = calls x mean; the calls
are shown).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from ..errors import BadInputError
from . import stats
from .diff_samples import CATEGORIES, RunSamples

METRICS = ("total", "mean", "p50", "p90", "p99")
TESTED = ("mean", "p50", "p90", "p99")
MIN_SAMPLES = 5
RESAMPLES = 400
MAX_BOOTSTRAP_SAMPLES = 4000   # larger samples are subsampled (without replacement) first
CONFIDENCE = 0.95
SEED = 0
METHOD = (f"percentile bootstrap ({RESAMPLES} resamples, seed {SEED}, {CONFIDENCE:.0%} interval of "
          f"new - base; samples above {MAX_BOOTSTRAP_SAMPLES} subsampled)")


@dataclass
class Diff:
    base: str
    new: str
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)   # category -> compared names
    layer_changes: pd.DataFrame = field(default_factory=pd.DataFrame)  # precision/tactic/format
    notes: list[str] = field(default_factory=list)
    method: str = METHOD
    unsampled: set[str] = field(default_factory=set)  # categories a side has no samples of


def compare(base: RunSamples, new: RunSamples) -> Diff:
    out = Diff(base.label, new.label, notes=[*base.notes, *new.notes], unsampled=base.unsampled | new.unsampled)
    rng = np.random.default_rng(SEED)
    new = match_by_origin(base, new, out.notes)
    for category in CATEGORIES:
        a, b = _side(base, category), _side(new, category)
        if a is None and b is None:
            continue
        if a is None or b is None:
            only = base.label if a is not None else new.label
            out.notes.append(f"{category}: only {only} has {category} times; not compared")
            continue
        out.tables[category] = compare_category(a, b, rng)
    if not any((t["status"] == "both").any() for t in out.tables.values()):
        raise BadInputError(f"{base.label} and {new.label} have nothing in common (no layer, range, kernel, "
                            "stage or latency name in both)",
                            "Compare two runs of the same model or program")
    out.layer_changes = layer_changes(base.layer_info, new.layer_info)
    return out


def _side(run: RunSamples, category: str) -> tuple[pd.DataFrame, pd.DataFrame | None] | None:
    """(statistics, samples or None) of one run's category; None when it has neither."""
    if category in run.samples:
        return _describe(run.samples[category]), run.samples[category]
    if category in run.summaries:
        return run.summaries[category][list(STAT_COLUMNS)], None
    return None


STAT_COLUMNS = ("name", "count", "total", "mean", "p50", "p90", "p99")


def compare_category(base: tuple, new: tuple, rng: np.random.Generator) -> pd.DataFrame:
    """One row per name in either run: both sides' statistics, deltas and verdicts (only where
    both sides have samples)."""
    (base_stats, base_samples), (new_stats, new_samples) = base, new
    left = base_stats.add_prefix("base_").rename(columns={"base_name": "name"})
    right = new_stats.add_prefix("new_").rename(columns={"new_name": "name"})
    table = left.merge(right, on="name", how="outer", indicator="side")
    table["status"] = table.pop("side").astype(str).map(
        {"both": "both", "left_only": "only in base", "right_only": "only in new"})
    for metric in METRICS:
        delta = table[f"new_{metric}"] - table[f"base_{metric}"]
        table[f"delta_{metric}"] = delta
        base_value = table[f"base_{metric}"]
        table[f"delta_{metric}_pct"] = np.where(base_value > 0, delta / base_value.where(base_value > 0) * 100, np.nan)
    verdicts = _verdicts(table, base_samples, new_samples, rng)
    table = pd.concat([table, verdicts], axis=1)
    order = table["new_total"].fillna(0) - table["base_total"].fillna(0)
    return table.iloc[np.argsort(-order.abs().to_numpy(), kind="stable")].reset_index(drop=True)


def _describe(samples: pd.DataFrame) -> pd.DataFrame:
    out = stats.describe_by(samples, "name", "value_ns", percentiles=(50, 90, 99))
    return out[list(STAT_COLUMNS)]


def _verdicts(table: pd.DataFrame, base: pd.DataFrame | None, new: pd.DataFrame | None,
              rng: np.random.Generator) -> pd.DataFrame:
    base_groups = _groups(base) if base is not None else {}
    new_groups = _groups(new) if new is not None else {}
    rows = []
    for name in table["name"]:
        a, b = base_groups.get(name), new_groups.get(name)
        rows.append(bootstrap(a, b, rng) if a is not None and b is not None else _no_verdict())
    return pd.DataFrame(rows, index=table.index)


def _groups(samples: pd.DataFrame) -> dict[str, np.ndarray]:
    values = samples["value_ns"].to_numpy(dtype=np.float64)
    codes, names = pd.factorize(samples["name"])
    order = np.argsort(codes, kind="stable")
    bounds = np.searchsorted(codes[order], np.arange(len(names) + 1))
    return {name: values[order[bounds[i]:bounds[i + 1]]] for i, name in enumerate(names)}


def _no_verdict() -> dict:
    out: dict = {}
    for metric in TESTED:
        out |= {f"ci_low_{metric}": np.nan, f"ci_high_{metric}": np.nan, f"significant_{metric}": None}
    return out


def bootstrap(a: np.ndarray, b: np.ndarray, rng: np.random.Generator) -> dict:
    """95% intervals of new - base for mean, p50, p90 and p99, and whether each excludes 0."""
    if len(a) < MIN_SAMPLES or len(b) < MIN_SAMPLES:
        return _no_verdict()
    a, b = _cap(a, rng), _cap(b, rng)
    draws_a = a[rng.integers(0, len(a), (RESAMPLES, len(a)))]
    draws_b = b[rng.integers(0, len(b), (RESAMPLES, len(b)))]
    tail = (1 - CONFIDENCE) / 2 * 100
    out: dict = {}
    for metric in TESTED:
        diff = _statistic(draws_b, metric) - _statistic(draws_a, metric)
        low, high = np.percentile(diff, [tail, 100 - tail])
        out |= {f"ci_low_{metric}": float(low), f"ci_high_{metric}": float(high),
                f"significant_{metric}": bool(low > 0 or high < 0)}
    return out


def _cap(values: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    if len(values) <= MAX_BOOTSTRAP_SAMPLES:
        return values
    return rng.choice(values, MAX_BOOTSTRAP_SAMPLES, replace=False)


def _statistic(draws: np.ndarray, metric: str) -> np.ndarray:
    if metric == "mean":
        return draws.mean(axis=1)
    return np.percentile(draws, float(metric[1:]), axis=1, method=stats.PERCENTILE_METHOD)


def significant(row: pd.Series, metric: str) -> bool | None:
    """The verdict for ``metric`` of one compared row (the mean's for totals)."""
    value = row.get(f"significant_{'mean' if metric == 'total' else metric}")
    return None if value is None or (isinstance(value, float) and np.isnan(value)) else bool(value)


def match_by_origin(base: RunSamples, new: RunSamples, notes: list[str]) -> RunSamples:
    """``new`` with each layer that only it has renamed to the base's layer built from the same
    ONNX nodes, when exactly one layer only the base has was (names differ between engines:
    Myelin suffixes, fusion order)."""
    if "layer" not in base.samples or "layer" not in new.samples or "onnx_nodes" not in base.layer_info \
            or "onnx_nodes" not in new.layer_info:
        return new
    only_base = set(base.samples["layer"]["name"]) - set(new.samples["layer"]["name"])
    only_new = set(new.samples["layer"]["name"]) - set(base.samples["layer"]["name"])
    origin_base = _origins(base.layer_info, only_base)
    renames = {layer: origin_base[nodes] for nodes, layer in _origins(new.layer_info, only_new).items()
               if nodes in origin_base}
    if not renames:
        return new
    notes.extend(f"layer '{name}' in {new.label} matched by ONNX origin to '{renames[name]}'" for name in sorted(renames))
    samples = dict(new.samples)
    samples["layer"] = samples["layer"].assign(name=samples["layer"]["name"].replace(renames))
    info = new.layer_info.assign(layer=new.layer_info["layer"].replace(renames))
    return replace(new, samples=samples, layer_info=info)


def _origins(info: pd.DataFrame, names: set[str]) -> dict[str, str]:
    """ONNX node list -> layer, for the named layers whose node list no other of them shares."""
    rows = info[info["layer"].isin(names) & info["onnx_nodes"].notna()]
    unique = rows.drop_duplicates("onnx_nodes", keep=False)
    return dict(zip(unique["onnx_nodes"], unique["layer"]))


CHANGE_COLUMNS = ("layer_type", "precision", "tactic", "inputs", "outputs")


def layer_changes(base: pd.DataFrame, new: pd.DataFrame) -> pd.DataFrame:
    """Layers both engines have whose precision, tactic, formats or type differ."""
    columns = [c for c in CHANGE_COLUMNS if c in base.columns and c in new.columns]
    if base.empty or new.empty or not columns:
        return pd.DataFrame(columns=["layer", "what", "base", "new"])
    joined = base[["layer", *columns]].merge(new[["layer", *columns]], on="layer", suffixes=("_base", "_new"))
    rows = []
    for _, row in joined.iterrows():
        for column in columns:
            old, now = row[f"{column}_base"], row[f"{column}_new"]
            if not (pd.isna(old) and pd.isna(now)) and old != now:
                rows.append({"layer": row["layer"], "what": column, "base": old, "new": now})
    return pd.DataFrame(rows, columns=["layer", "what", "base", "new"])
