"""Inside compute: after a traced load test, the ONNX Runtime node times of each request.

Only for a model that ``gpuprof triton serve --ort-profile DIR`` serves on this machine (its
config names ``profile_dir``): flush the model's profile with one request (again while a
session that ran this test's requests is still open: each request reaches one instance),
read the folder (ingest), verify its clock (align) and tie nodes to requests (analyze).
Anything missing or unreadable becomes a note, never a failed load test.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from ..errors import GpuprofError
from ..model import ClockDomain

FLUSH_TRIES = 8


@dataclass
class NodesResult:
    folder: Path
    result: object | None = None        # analyze.request_nodes.RequestNodes
    clock: ClockDomain | None = None
    notes: list[str] = field(default_factory=list)


def collect_nodes(sweep, spans: pd.DataFrame | None) -> NodesResult | None:
    """None when the model profiles nothing; else the nodes, or notes saying why not."""
    from ..capture.ort_profile_flush import model_config, profile_dir_of

    spec = sweep.spec
    try:
        folder = profile_dir_of(model_config(spec.url, spec.protocol, spec.model,
                                             spec.model_version))
    except Exception as exc:  # noqa: BLE001 -- a config we cannot read only loses this section
        return NodesResult(Path("?"), notes=[f"model config not read: {exc}"])
    if folder is None:
        return None
    if not folder.is_dir():
        return NodesResult(folder, notes=[f"the model profiles into {folder}, which is not "
                                          "on this machine: no node times"])
    try:
        return _read(sweep, folder, spans)
    except Exception as exc:  # noqa: BLE001 -- the load test stands without its nodes
        why = exc.message if isinstance(exc, GpuprofError) else f"{type(exc).__name__}: {exc}"
        return NodesResult(folder, notes=[f"ONNX Runtime profile not read: {why}"])


def _read(sweep, folder: Path, spans) -> NodesResult:
    from ..align.ort_clock import ort_clock, shift
    from ..analyze.request_nodes import request_nodes
    from ..ingest.ort_server_profile import read_profile_dir

    notes = _flush(sweep, folder)
    profile = read_profile_dir(folder, sweep.prefix)
    clock = ort_clock(profile.runs)
    runs = shift(profile.runs, ["ort_start_ns", "ort_end_ns"], clock.offset_ns)
    nodes = shift(profile.nodes, ["start_ns"], clock.offset_ns)
    client = sweep.requests_table()
    measured = client.loc[client["ok"], "request_id"] if not client.empty else []
    result = request_nodes(runs, nodes, measured, spans)
    return NodesResult(folder, result, clock, notes + profile.issues)


def _flush(sweep, folder: Path) -> list[str]:
    """Flush until no session that ran this test's requests is still open."""
    from ..capture.loadgen.inputs import make_payloads
    from ..capture.ort_profile_flush import send_flush

    # not under the test's prefix: the session the flush request opens holds no test request
    spec, flush_id = sweep.spec, f"ortflush-{sweep.prefix}"
    payload = make_payloads(sweep.model, sweep.shapes, "zero")[0]
    for n in range(FLUSH_TRIES):
        send_flush(spec.url, spec.protocol, spec.model, spec.model_version, payload,
                   f"{flush_id}{n}", spec.request_timeout_s)
        if not _open_sessions(folder, sweep.prefix):
            return []
    return [f"{_open_sessions(folder, sweep.prefix)} model instance session(s) "
            f"still open after {FLUSH_TRIES} flush requests: their runs have no node times"]


def _open_sessions(folder: Path, prefix: str) -> int:
    from ..ingest.ort_server_profile import scan_sessions

    sessions, _ = scan_sessions(folder, prefix)
    return sum(1 for s in sessions.values() if s.profile is None)
