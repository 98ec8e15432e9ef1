"""GPU time per NVTX range, and the TensorRT layer bottleneck table built on it.

Kernels are attributed to ranges by ``align.nvtx.project_to_ranges``. A layer's GPU time is the
summed duration of the kernels attributed to its ranges; its calls are its range instances
(one per inference), so per-call statistics include calls that launched no kernel.
"""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd

from ..align.nvtx import NO_RANGE, project_to_ranges, push_pop_rows
from ..model import Profile
from . import stats
from .nvtx_summary import range_pattern

TENSORRT_DOMAIN = "TensorRT"
# Outer ranges TensorRT wraps around a whole inference; kernels directly in them belong to no layer.
ENGINE_WRAPPER = re.compile(r"^(I?ExecutionContext|IRuntime|ICudaEngine)::")
REFORMAT = re.compile(r"^Reformat|Reformatting CopyNode", re.IGNORECASE)
UNATTRIBUTED = "(outside any layer)"


def is_tensorrt(profile: Profile) -> bool:
    return bool((profile.frame("nvtx_ranges", ["domain"])["domain"] == TENSORRT_DOMAIN).any())


def kernel_ranges(profile: Profile, domain: str | None = None,
                  range_rows: np.ndarray | None = None,
                  durations: np.ndarray | None = None) -> pd.DataFrame:
    """Kernels with ``range_row`` (row in nvtx_ranges, -1 if none), ``duration_ns`` and
    ``kernel`` (the kernel name as a categorical, so millions of rows stay cheap).

    ``range_rows`` (and ``durations``) computed earlier, saved with the run, are used as
    given; without them the kernels are projected onto the ranges now."""
    if range_rows is None:
        range_rows = project_to_ranges(profile.kernels, profile.api_calls, profile.nvtx_ranges, domain)
    if durations is None:
        times = profile.frame("kernels", ["start_ns", "end_ns"])
        durations = times["end_ns"].to_numpy() - times["start_ns"].to_numpy()
    return pd.DataFrame({
        "range_row": np.asarray(range_rows),
        "duration_ns": np.asarray(durations, dtype=np.int64),  # sums stay int64-exact
        "kernel": profile.frame("kernels", ["name"])["name"].array,
    }, copy=False)


def coverage(attributed: pd.DataFrame) -> float:
    """Share of kernel time attributed to any range (0..1; NaN with no kernel time)."""
    total = attributed["duration_ns"].sum()
    inside = attributed.loc[attributed["range_row"] != NO_RANGE, "duration_ns"].sum()
    return float(inside / total) if total > 0 else float("nan")


def layer_name(text: str) -> str:
    """The layer name from a range text; DETAILED builds put JSON with a "name" field there."""
    if isinstance(text, str) and text.startswith("{"):
        try:
            details = json.loads(text)
            for key in ("name", "Name", "LayerName"):
                if isinstance(details.get(key), str):
                    return details[key]
        except (json.JSONDecodeError, AttributeError):
            match = re.search(r'"[Nn]ame"\s*:\s*"((?:[^"\\]|\\.)*)"', text)
            if match:
                return match.group(1)
    return str(text)


RANGE_TABLE_COLUMNS = ["domain", "name", "calls", "total_ns", "median_ns", "kernels", "mean_ns",
                       "kernels_per_call", "share", "cumulative_share", "top_kernels"]


def gpu_time_by_range(profile: Profile, domain: str | None = None,
                      attributed: pd.DataFrame | None = None,
                      group_ids: bool = False) -> pd.DataFrame:
    """Per (domain, range name): calls, total/mean/median GPU ns per call, kernels per call,
    share and cumulative share of attributed GPU time, and the heaviest kernels. With
    ``group_ids`` names that differ only by trailing ids share a row (``range_pattern``)."""
    if attributed is None:
        attributed = kernel_ranges(profile, domain)
    ranges = profile.frame("nvtx_ranges", ["range_kind", "domain", "text"])
    instances = _instances(ranges, domain, group_ids)
    if instances.empty:
        return pd.DataFrame(columns=RANGE_TABLE_COLUMNS)
    fast = _by_range_numpy(instances, attributed, len(ranges))
    if fast is not None:
        return fast
    time_per_row, kernels_per_row = _per_row_totals(attributed, len(ranges))
    per_call = instances.assign(sum=time_per_row[instances["row"].to_numpy()],
                                count=kernels_per_row[instances["row"].to_numpy()])
    table = _summarise_calls(per_call)
    return _with_kernels(table, attributed, instances, len(ranges))


# The numpy path below gives exactly what the pandas path (_summarise_calls + _with_kernels)
# gives, in a fraction of the time on millions of range instances; the pandas path remains
# for the cases it does not cover (no instances, very many groups, sums beyond 2**53).
MAX_GROUPS = 20_000
MAX_PAIRS = 1 << 24
EXACT = 2.0**53


def _by_range_numpy(instances: pd.DataFrame, attributed: pd.DataFrame, n_ranges: int,
                    top: int = 2) -> pd.DataFrame | None:
    rows = instances["row"].to_numpy()
    if len(rows) == 0:
        return None
    group, domains, names = _groups(instances)
    n_groups = len(domains)
    if n_groups == 0 or n_groups > MAX_GROUPS:
        return None
    time_per_row, kernels_per_row = _per_row_totals(attributed, n_ranges)
    if not np.abs(time_per_row).sum() < EXACT:
        return None
    # Per-instance arrays only from here on; per-row ones are released as soon as possible.
    sums = time_per_row[rows]
    del time_per_row
    counts = kernels_per_row[rows]
    del kernels_per_row
    inside = group >= 0
    if not inside.all():
        group, sums, counts = group[inside], sums[inside], counts[inside]
        rows = rows[inside]
    del inside
    calls = np.bincount(group, minlength=n_groups)
    # pandas sums in the column's own dtype (float64, or int64 when no kernel was attributed)
    total = np.bincount(group, weights=sums, minlength=n_groups).astype(sums.dtype, copy=False)
    kernels = np.bincount(group, weights=counts, minlength=n_groups).astype(np.int64)
    del counts
    median = _group_medians(group, sums, calls)
    del sums
    table = pd.DataFrame({"domain": pd.Series(domains, dtype=object),
                          "name": pd.Series(names, dtype=object), "calls": calls, "total_ns": total,
                          "median_ns": median, "kernels": kernels})
    table["mean_ns"] = table["total_ns"] / table["calls"]
    table["kernels_per_call"] = table["kernels"] / table["calls"]
    order = np.argsort(-total, kind="stable")
    table = table.take(order).reset_index(drop=True)
    table["share"], table["cumulative_share"] = stats.shares(table["total_ns"])
    tops = _top_kernels(attributed, group, rows, n_groups, n_ranges, top)
    if tops is None:
        return None
    table["top_kernels"] = [tops[g] for g in order]
    return table


def _groups(instances: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Group of each instance by (domain, name) in order of first appearance (-1 where either
    is missing, as groupby drops those), and each group's domain and name."""
    domain, name = instances["domain"].array, instances["name"].array
    n_names = max(len(name.categories), 1)
    key = domain.codes.astype(np.int64)
    key *= n_names
    key += name.codes
    valid = (domain.codes >= 0) & (name.codes >= 0)
    if valid.all():
        group, uniques = pd.factorize(key)
        group = group.astype(np.int64, copy=False)
    else:
        group = np.full(len(key), -1, dtype=np.int64)
        group[valid], uniques = pd.factorize(key[valid])
    del key
    uniques = np.asarray(uniques, dtype=np.int64)
    domains = np.asarray(domain.categories, dtype=object)[uniques // n_names]
    names = np.asarray(name.categories, dtype=object)[uniques % n_names] if len(name.categories) \
        else np.empty(0, dtype=object)
    return group, domains, names


def _group_medians(group: np.ndarray, values: np.ndarray, calls: np.ndarray) -> np.ndarray:
    """Median of ``values`` per group, as pandas computes it (mean of the two middle values)."""
    order = np.argsort(group.astype(np.int16 if len(calls) < 2**15 else np.int32), kind="stable")
    ordered = values[order]
    ends = np.cumsum(calls)
    median = np.empty(len(calls), dtype=np.float64)
    for g, (stop, count) in enumerate(zip(ends.tolist(), calls.tolist())):
        part = ordered[stop - count:stop]
        lo, hi = (count - 1) // 2, count // 2
        part.partition((lo, hi) if lo != hi else lo)
        median[g] = (part[lo] + part[hi]) / 2
    return median


def _top_kernels(attributed: pd.DataFrame, group: np.ndarray, rows: np.ndarray, n_groups: int,
                 n_ranges: int, top: int) -> list[list[str]] | None:
    """Names of the ``top`` kernels by summed time in each group (ties: first name code)."""
    kernel = attributed["kernel"].array
    n_names = max(len(kernel.categories), 1)
    if n_groups * n_names > MAX_PAIRS:
        return None
    group_of_row = np.full(n_ranges, -1, dtype=np.int64)
    group_of_row[rows] = group
    range_row = attributed["range_row"].to_numpy()
    # In place where possible: these arrays have a row per kernel (millions).
    pair = group_of_row.take(range_row)  # -1 takes the last entry: overwritten just below
    del group_of_row
    pair[range_row < 0] = -1
    codes = kernel.codes
    valid = (pair >= 0) & (codes >= 0)
    pair *= n_names
    pair += codes
    durations = attributed["duration_ns"].to_numpy()
    if not valid.all():
        pair, durations = pair[valid], durations[valid]
    if not np.abs(durations).sum() < EXACT:
        return None
    size = n_groups * n_names
    ns = np.bincount(pair, weights=durations, minlength=size)
    present = np.flatnonzero(np.bincount(pair, minlength=size))
    ns = ns[present]
    pair_group, pair_kernel = present // n_names, present % n_names
    order = np.lexsort((pair_kernel, -ns, pair_group))
    pair_group, pair_kernel = pair_group[order], pair_kernel[order]
    first = np.searchsorted(pair_group, pair_group, side="left")
    keep = np.arange(len(pair_group)) - first < top
    names = np.asarray(kernel.categories, dtype=object)
    tops: list[list[str]] = [[] for _ in range(n_groups)]
    for g, k in zip(pair_group[keep].tolist(), pair_kernel[keep].tolist()):
        tops[g].append(str(names[k]))
    return tops


def _instances(ranges: pd.DataFrame, domain: str | None, group_ids: bool = False) -> pd.DataFrame:
    """One row per push/pop range instance: its row, domain and (layer) name as categoricals.

    Names are decoded once per distinct range text, not once per instance.
    """
    rows = push_pop_rows(ranges, domain)
    text = ranges["text"].array
    name = (lambda c: range_pattern(layer_name(c))) if group_ids else layer_name
    decoded = pd.Series([name(c) for c in text.categories], dtype=object)
    name_of_code, names = pd.factorize(decoded)
    # a code of -1 (no text) takes the appended -1: one gather, no temporaries per instance
    name_codes = np.append(name_of_code, -1).astype(np.int32, copy=False)[text.codes[rows]]
    return pd.DataFrame({
        "row": rows,
        "domain": ranges["domain"].array.take(rows),
        "name": pd.Categorical.from_codes(name_codes, categories=pd.Index(names, dtype=object)),
    }, copy=False)


def _per_row_totals(attributed: pd.DataFrame, n_ranges: int) -> tuple[np.ndarray, np.ndarray]:
    """Summed kernel ns and kernel count per nvtx_ranges row."""
    rows = attributed["range_row"].to_numpy()
    durations = attributed["duration_ns"].to_numpy()
    # float64 sums are exact below 2**53 ns (104 days of kernel time per range)
    if len(rows) > 1 and (rows[1:] >= rows[:-1]).all():
        # in order, the unattributed (NO_RANGE, -1) come first: cut them off as views, not
        # copies (at 5M kernels two copies were 60 MiB of the layer table's peak)
        first = int(np.searchsorted(rows, NO_RANGE, side="right")) if rows[0] == NO_RANGE else 0
        return _sorted_row_totals(rows[first:], durations[first:], n_ranges)
    if len(rows) and rows.min() == NO_RANGE:  # unattributed kernels among the others
        inside = rows != NO_RANGE
        rows, durations = rows[inside], durations[inside]
        if len(rows) > 1 and (rows[1:] >= rows[:-1]).all():
            return _sorted_row_totals(rows, durations, n_ranges)
    time = np.bincount(rows, weights=durations, minlength=n_ranges)
    count = np.bincount(rows, minlength=n_ranges)
    return time, count


def _sorted_row_totals(rows: np.ndarray, durations: np.ndarray,
                       n_ranges: int) -> tuple[np.ndarray, np.ndarray]:
    """``_per_row_totals`` when kernels come in range order (kernels and ranges are both in
    time order, the usual case): one sequential pass of segment sums instead of a scattered
    weighted bincount, several times faster on millions of kernels; same values."""
    time = np.zeros(n_ranges, dtype=np.float64)
    count = np.zeros(n_ranges, dtype=np.int64)
    if len(rows) == 0:
        return time, count
    # where a new row starts: a byte per kernel (np.diff with a prepend held two row copies)
    change = np.empty(len(rows), dtype=bool)
    change[0] = True
    np.not_equal(rows[1:], rows[:-1], out=change[1:])
    # positions as int32 where they fit: at 5M kernels nearly every kernel starts a segment
    starts = np.flatnonzero(change).astype(_positions_dtype(len(rows)), copy=False)
    del change
    present = rows[starts]
    time[present] = np.add.reduceat(durations, starts)
    sizes = np.empty_like(starts)  # each segment's kernels: the next start minus this one
    sizes[:-1] = starts[1:]
    sizes[-1] = len(rows)
    sizes -= starts
    count[present] = sizes
    return time, count


def _positions_dtype(n: int) -> type:
    return np.int32 if n < 2**31 else np.int64


def _summarise_calls(per_call: pd.DataFrame) -> pd.DataFrame:
    grouped = per_call.groupby(["domain", "name"], sort=False, observed=True)
    table = grouped.agg(calls=("row", "size"), total_ns=("sum", "sum"),
                        median_ns=("sum", "median"), kernels=("count", "sum")).reset_index()
    table["domain"] = table["domain"].astype(object)
    table["name"] = table["name"].astype(object)
    table["mean_ns"] = table["total_ns"] / table["calls"]
    table["kernels_per_call"] = table["kernels"] / table["calls"]
    table = table.sort_values("total_ns", ascending=False, kind="stable").reset_index(drop=True)
    table["share"], table["cumulative_share"] = stats.shares(table["total_ns"])
    return table


def _with_kernels(table: pd.DataFrame, attributed: pd.DataFrame, instances: pd.DataFrame,
                  n_ranges: int, top: int = 2) -> pd.DataFrame:
    """The ``top`` kernels by summed time within each (domain, name) group."""
    group_of_instance = instances.groupby(["domain", "name"], sort=False, observed=True).ngroup()
    keys = instances[["domain", "name"]].astype(object).assign(group=group_of_instance.to_numpy())
    keys = keys.drop_duplicates("group").set_index(["domain", "name"])["group"]
    group_of_row = np.full(n_ranges, -1, dtype=np.int64)
    group_of_row[instances["row"].to_numpy()] = group_of_instance.to_numpy()
    rows = attributed["range_row"].to_numpy()
    kernel = attributed["kernel"].array
    group = np.where(rows >= 0, group_of_row[np.maximum(rows, 0)], -1)
    valid = (group >= 0) & (kernel.codes >= 0)
    n_names = max(len(kernel.categories), 1)
    combined = group[valid] * n_names + kernel.codes[valid]
    sums = pd.Series(attributed["duration_ns"].to_numpy()[valid]).groupby(combined).sum()
    best = pd.DataFrame({"group": sums.index // n_names, "kernel": sums.index % n_names,
                         "ns": sums.to_numpy()}).sort_values(["group", "ns"], ascending=[True, False])
    best = best.groupby("group").head(top)
    names = np.asarray(kernel.categories, dtype=object)
    tops = best.groupby("group")["kernel"].agg(lambda ks: [str(names[k]) for k in ks])
    per_key = keys.map(tops)
    table["top_kernels"] = [v if isinstance(v, list) else [] for v in
                            per_key.reindex(pd.MultiIndex.from_frame(table[["domain", "name"]])).to_numpy()]
    return table


def range_table_for_storage(table: pd.DataFrame) -> pd.DataFrame:
    """``gpu_time_by_range``'s table in a form Parquet stores exactly (names as strings)."""
    stored = table.copy()
    for column in ("domain", "name"):
        stored[column] = stored[column].astype(str)
    stored["top_kernels"] = [[str(k) for k in kernels] for kernels in stored["top_kernels"]]
    return stored


def range_table_from_storage(stored: pd.DataFrame) -> pd.DataFrame:
    """The table ``range_table_for_storage`` stored, as ``gpu_time_by_range`` returns it."""
    if stored.empty:
        return pd.DataFrame(columns=RANGE_TABLE_COLUMNS)
    table = stored[RANGE_TABLE_COLUMNS].copy()
    for column in ("domain", "name"):
        table[column] = table[column].astype(object)
    table["top_kernels"] = [list(kernels) for kernels in table["top_kernels"]]  # Parquet: arrays
    return table


def layer_table(profile: Profile, attributed: pd.DataFrame | None = None,
                ranges: pd.DataFrame | None = None) -> pd.DataFrame:
    """The TensorRT layer bottleneck table: one row per layer, heaviest first.

    Engine wrapper ranges (ExecutionContext::...) are folded into one UNATTRIBUTED row holding
    the kernel time inside an inference but outside every layer. ``attributed`` is
    ``kernel_ranges(profile, TENSORRT_DOMAIN)``, and ``ranges`` the ``gpu_time_by_range`` table
    made from it, when the caller already has them.
    """
    if ranges is None:
        if attributed is None:
            attributed = kernel_ranges(profile, TENSORRT_DOMAIN)
        ranges = gpu_time_by_range(profile, TENSORRT_DOMAIN, attributed)
    table = ranges
    wrapper = table["name"].str.match(ENGINE_WRAPPER)
    layers = table[~wrapper].drop(columns=["domain"]).reset_index(drop=True)
    outside = table[wrapper]
    if outside["total_ns"].sum() > 0:
        row = {"name": UNATTRIBUTED, "calls": int(outside["calls"].max()),
               "total_ns": outside["total_ns"].sum(), "kernels": outside["kernels"].sum(),
               "median_ns": float("nan"), "top_kernels": []}
        layers = pd.concat([layers, pd.DataFrame([row])], ignore_index=True)
    layers = layers.rename(columns={"name": "layer"})
    layers["reformat"] = layers["layer"].str.contains(REFORMAT)
    return _reshare(layers)


def _reshare(layers: pd.DataFrame) -> pd.DataFrame:
    layers = layers.sort_values("total_ns", ascending=False, kind="stable").reset_index(drop=True)
    layers["share"], layers["cumulative_share"] = stats.shares(layers["total_ns"])
    layers["mean_ns"] = layers["total_ns"] / layers["calls"]
    layers["kernels_per_call"] = layers["kernels"] / layers["calls"]
    return layers


def pareto(layers: pd.DataFrame, share: float = 0.8) -> tuple[int, float]:
    """Fewest layers whose GPU time reaches ``share`` of the total, and their exact share."""
    if layers.empty or not layers["total_ns"].sum():
        return 0, float("nan")
    n = stats.count_to_reach(layers["cumulative_share"], share)
    return n, float(layers["cumulative_share"].iloc[n - 1])
