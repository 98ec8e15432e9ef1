"""What measuring a load test asks of analysis and ingest while it runs, as one interface.

A level is measured until its windows are stable, and each window's numbers are shown live, so
the measuring loop needs a window's metrics and a stability decision before the run ends; with
``--trace`` it must also tell a finished trace part from one Triton is still writing. Those
are analysis and ingest concerns: the composer (``pipeline/sweep.py::SweepMeasures``) hands
an object with these methods to ``measure_sweep``, so capture imports neither stage.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

import pandas as pd


class SweepAnalysis(Protocol):
    counted_windows: int   # a level's result merges its last this many windows

    def window(self, records: list, prefix: str, duration_ns: int,
               delta: dict) -> tuple[pd.DataFrame, dict]:
        """One window's requests as a frame (with ``ok`` and ``error`` columns) and its
        metrics (with ``errors``: failed requests, ``samples``: timed ones)."""
        ...

    def merged(self, frames: list[pd.DataFrame], duration_ns: int, deltas: list[dict]) -> dict:
        """The metrics of several windows taken together."""
        ...

    def stable(self, metrics: list[dict]) -> bool:
        """Whether the windows measured so far (their metrics, oldest first) are stable."""
        ...

    def check_trace_part(self, path: Path) -> tuple[bool, bool, Any]:
        """(whole JSON?, a list the server keeps open?, its records or None) of one trace part;
        the records are handed back to the composer, which reads the trace with them."""
        ...
