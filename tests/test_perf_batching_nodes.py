"""ONNX Runtime nodes under dynamic batching, for real: `gpuprof triton serve --dynamic-batching
--ort-profile` (one ORT run per batch, profiled) and `gpuprof perf --trace --node-csv`. Which
requests shared a run, each one's share and the nodes it is given are recomputed here in plain
Python from the model's run lines and ONNX Runtime's own profile JSON."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import defaultdict

import numpy as np
import pandas as pd
import pytest

from tests.conftest import CLS_MODEL, KERNEL_TIME, ort_profiled_runs
from tests.test_perf_batching import BATCH, ROWS

pytestmark = [pytest.mark.triton, pytest.mark.slow]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    from gpuprof.capture.triton_server import TraceConfig, serve_onnx

    if not CLS_MODEL.exists():
        pytest.skip("run tools/fetch_models.py first")
    root = tmp_path_factory.mktemp("batched-nodes")
    trace = TraceConfig(root / "trace.json", levels=("OFF",))
    out = root / "out"
    out.mkdir()
    with serve_onnx(CLS_MODEL, trace=trace, batching=BATCH, profile_dir=root / "prof") as srv:
        cmd = [sys.executable, "-m", "gpuprof", "perf", "-m", srv.model_name, "-u",
               srv.http_url, "--shape", "x:3,48,192", "-b", str(ROWS), "--concurrency-range",
               "4", "-p", "400", "-r", "3", "--warmup", "100", "--trace", "--trace-rate", "1",
               "--node-csv", str(out / "nodes.csv"), "--trace-csv", str(out / "requests.csv"),
               "-o", str(out / "report.json"), "--no-live"]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return {"prof": root / "prof", "nodes": pd.read_csv(out / "nodes.csv"),
            "csv": pd.read_csv(out / "requests.csv"),
            "report": json.loads((out / "report.json").read_text())}


def _raw_runs(prof) -> dict[str, dict]:
    """{request id: {"run": (pid, session, k), "ids": [...], "share": float,
    "nodes": [(node, dur ns)]}} from the run lines and ORT's profile JSON, read here."""
    out = {}
    for pid, session, k, line, events in ort_profiled_runs(prof):
        nodes = sorted((e["name"][:-len(KERNEL_TIME)], e["dur"] * 1000) for e in events)
        ids = line.get("request_ids", [line.get("request_id")])
        rows = line.get("rows", [1] * len(ids))
        for rid, r in zip(ids, rows):
            out[rid] = {"run": (pid, session, k), "ids": ids, "share": r / sum(rows), "nodes": nodes}
    return out


def test_batches_ran_as_one_profiled_run_each(run):
    raw = _raw_runs(run["prof"])
    measured = set(run["csv"]["request_id"])
    shared = [rid for rid in measured if len(raw[rid]["ids"]) > 1]
    assert shared, "no ONNX Runtime run served two requests: nothing was batched"
    for rid in shared:      # every request of a batch sent -b ROWS rows
        assert raw[rid]["share"] == pytest.approx(1 / len(raw[rid]["ids"]))


def test_each_request_is_given_its_runs_nodes_and_share(run):
    raw = _raw_runs(run["prof"])
    nodes = run["nodes"]
    assert set(nodes["request_id"]) == set(run["csv"]["request_id"])
    for rid, rows in nodes.groupby("request_id"):
        expect = raw[rid]
        assert sorted(zip(rows["layer"], rows["duration_ns"])) == expect["nodes"], rid
        assert (rows["run_requests"] == len(expect["ids"])).all()
        assert np.allclose(rows["share"], expect["share"])


def test_requests_sharing_a_run_shared_a_triton_execution(run):
    """The model's batch and Triton's execution (same COMPUTE stamps) are the same requests."""
    raw = _raw_runs(run["prof"])
    csv = run["csv"].set_index("request_id")
    by_run = defaultdict(set)
    for rid in csv.index:
        by_run[raw[rid]["run"]].add(rid)
    for members in by_run.values():
        assert csv.loc[sorted(members), "execution_id"].nunique() == 1, members
    assert csv["execution_id"].nunique() == len(by_run)


def test_per_node_counts_each_execution_once(run):
    raw = _raw_runs(run["prof"])
    measured = set(run["csv"]["request_id"])
    executions = {raw[rid]["run"]: raw[rid]["nodes"] for rid in measured}
    section = next(s for s in run["report"]["sections"] if s["key"] == "ort_nodes")
    table = pd.DataFrame(section["rows"]).set_index("node")
    for node in table.index[:5]:
        values = np.array([d for nodes in executions.values() for n, d in nodes if n == node],
                          dtype="float64")
        assert table.loc[node, "n"] == len(values)
        assert table.loc[node, "p50_ns"] == pytest.approx(np.percentile(values, 50), rel=1e-9)
    shared = [rid for rid in measured if len(raw[rid]["ids"]) > 1]
    shared_runs, shared_requests = len({raw[rid]["run"] for rid in shared}), len(shared)
    notes = " ".join(section["notes"])
    assert (f"dynamic batching: {shared_requests} requests shared {shared_runs} ONNX Runtime "
            "runs") in notes
