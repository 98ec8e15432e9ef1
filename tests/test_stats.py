"""Shares and the Pareto count that every heaviest-first table uses."""

from __future__ import annotations

import math

import pandas as pd

from gpuprof.analyze.stats import count_to_reach, shares


def test_shares_are_fractions_of_the_sum_and_their_running_total():
    share, cumulative = shares(pd.Series([6, 3, 1]))
    assert share.tolist() == [0.6, 0.3, 0.1]
    assert [round(v, 12) for v in cumulative] == [0.6, 0.9, 1.0]


def test_shares_of_nothing_are_unknown():
    share, cumulative = shares(pd.Series([0, 0]))
    assert all(math.isnan(v) for v in share) and all(math.isnan(v) for v in cumulative)


def test_count_to_reach():
    assert count_to_reach([0.6, 0.9, 1.0], 0.8) == 2
    assert count_to_reach([0.6, 0.9, 1.0], 0.6) == 1  # reaching exactly counts
    assert count_to_reach([0.2, 0.4], 0.9) == 2  # never reached: every row
