"""CUDA API summary against a plain Python computation, on both sort paths (packed key and the
lexsort fallback for durations too large to pack)."""

from __future__ import annotations

import statistics

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gpuprof.analyze.api_calls import api_summary

NAMES = ["cudaMalloc", "cudaFree", "cudaLaunchKernel"]


CALLS = st.lists(st.tuples(st.sampled_from(NAMES), st.integers(0, 1000)), min_size=1, max_size=60)
# durations of 2**60 ns do not pack with the name code: the lexsort path (few, so sums fit int64)
HUGE_CALLS = st.lists(st.tuples(st.sampled_from(NAMES), st.integers(0, 1)), min_size=1, max_size=6)


@settings(max_examples=40, deadline=None)
@given(st.one_of(CALLS.map(lambda c: (c, False)), HUGE_CALLS.map(lambda c: (c, True))))
def test_summary_matches_plain_python(case):
    calls, huge = case
    scale = 2**60 if huge else 1
    frame = pd.DataFrame({"name": pd.Categorical([n for n, _ in calls]),
                          "start_ns": 0, "end_ns": [d * scale for _, d in calls]})
    summary = api_summary(frame).set_index("name")
    grand = sum(d * scale for _, d in calls)
    for name in {n for n, _ in calls}:
        durations = [d * scale for n, d in calls if n == name]
        row = summary.loc[name]
        assert row["calls"] == len(durations) and row["total_ns"] == sum(durations)
        assert (row["min_ns"], row["max_ns"]) == (min(durations), max(durations))
        assert row["median_ns"] == pytest.approx(statistics.median(durations))
        if grand:
            assert row["share"] == pytest.approx(sum(durations) / grand)
    assert summary["total_ns"].is_monotonic_decreasing


def test_empty_gives_the_columns():
    empty = api_summary(pd.DataFrame({"name": pd.Categorical([]), "start_ns": [], "end_ns": []}))
    assert empty.empty and "median_ns" in empty.columns
