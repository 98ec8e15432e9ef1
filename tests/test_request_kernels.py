"""Kernels inside request windows, on a real TensorRT export: each of the 50
`ExecutionContext::execute` ranges of the ResNet-50 export opens a window that runs until the
next one opens (the last one to the export's end), standing in for the compute windows of 50
requests; per-window kernel counts, GPU time and top layer are recomputed in plain SQL."""

from __future__ import annotations

import json
from collections import defaultdict

import numpy as np
import pandas as pd
import pytest

from gpuprof.analyze.request_kernels import kernel_layers, kernels_per_request, window_owner
from gpuprof.api import Run
from tests.conftest import SQL_KERNEL_LAUNCHES, SQL_TENSORRT_DOMAIN, nsys_profile, nsys_sql

RESNET = "Dhruv23__DNNPartitioning__resnet50_profile_20251023_124711.sqlite"
TEXT = "coalesce(n.text, (SELECT value FROM StringIds WHERE id = n.textId))"
# each kernel with the TensorRT layer range (n) around its launch call (layer ranges do not
# nest; the execute range around them all is left out)
KERNEL_LAYERS = f"""{SQL_KERNEL_LAUNCHES}
    JOIN NVTX_EVENTS n ON n.eventType = 59 AND n.globalTid = r.globalTid
         AND n.start <= r.start AND n.end >= r.end
         AND {TEXT} != 'ExecutionContext::execute' AND n.domainId IN {SQL_TENSORRT_DOMAIN}"""


def _windows() -> pd.DataFrame:
    starts = [r[0] for r in nsys_sql(RESNET, f"SELECT n.start FROM NVTX_EVENTS n WHERE "
                                     f"n.eventType = 59 AND {TEXT} = 'ExecutionContext::execute' "
                                     "ORDER BY n.start")]
    (last,), = nsys_sql(RESNET, "SELECT MAX(end) FROM CUPTI_ACTIVITY_KIND_KERNEL")
    ends = [s - 1 for s in starts[1:]] + [last]
    return pd.DataFrame({"request_id": [f"r{i}" for i in range(len(starts))],
                         "start_ns": starts, "end_ns": ends})


def test_kernels_per_window_match_plain_sql():
    run = Run.of(nsys_profile(RESNET))
    windows = _windows()
    found = kernels_per_request(windows, run.kernels, kernel_layers(run))
    table = found.per_request.set_index("request_id")
    assert len(windows) == 50 and len(table) == 50
    for row in windows.itertuples(index=False):
        (count, gpu), = nsys_sql(RESNET, "SELECT COUNT(*), SUM(end - start) FROM "
                                 "CUPTI_ACTIVITY_KIND_KERNEL WHERE start BETWEEN "
                                 f"{row.start_ns} AND {row.end_ns}")
        assert (table.loc[row.request_id, "kernels"], table.loc[row.request_id, "gpu_ns"]) == \
            (count, gpu)
    (before,), = nsys_sql(RESNET, "SELECT COUNT(*) FROM CUPTI_ACTIVITY_KIND_KERNEL WHERE "
                          f"start < {windows['start_ns'].min()}")
    assert found.outside == before and found.ambiguous == 0


def test_top_layer_of_a_window_matches_plain_sql():
    run = Run.of(nsys_profile(RESNET))
    windows = _windows()
    table = kernels_per_request(windows, run.kernels,
                                kernel_layers(run)).per_request.set_index("request_id")
    w = windows.iloc[7]
    rows = nsys_sql(RESNET, f"""
        SELECT {TEXT} AS layer, SUM(k.end - k.start) AS gpu FROM {KERNEL_LAYERS}
        WHERE k.start BETWEEN {w.start_ns} AND {w.end_ns}
        GROUP BY layer ORDER BY gpu DESC LIMIT 1""")
    layer, gpu = rows[0]
    assert table.loc[w.request_id, "top_layer"] == layer
    assert table.loc[w.request_id, "top_layer_ns"] == gpu


def test_overlapping_windows_leave_their_shared_kernels_unattributed():
    starts, ends = np.array([0, 50, 200]), np.array([100, 150, 300])
    owner = window_owner(starts, ends, np.array([10, 60, 120, 160, 250, 400]))
    assert list(owner) == [0, -2, 1, -1, 2, -1]
    # a long window holding a time after a shorter, later one ended
    assert list(window_owner(np.array([0, 10]), np.array([100, 20]), np.array([50]))) == [0]


@pytest.mark.triton
def test_perf_places_a_server_export_on_its_clock_and_says_what_it_could_not_place(
        cls_triton_server, tmp_path):
    """The command-line path: an export of another machine and year lands on this run's clock
    by its UTC start, far from every window, so every kernel is reported outside, none guessed."""
    import json
    import subprocess
    import sys

    from tests.conftest import fixture_path

    srv = cls_triton_server
    out = tmp_path / "report.json"
    cmd = [sys.executable, "-m", "gpuprof", "perf", "-m", srv.model_name, "-u", srv.http_url,
           "--shape", "x:1,3,48,192", "-p", "300", "-r", "2", "--warmup", "100", "--trace",
           "--server-nsys", str(fixture_path("nsys", RESNET)), "-o", str(out), "--no-live"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    section = next(s for s in json.loads(out.read_text())["sections"]
                   if s["key"] == "request_kernels")
    (kernels,), = nsys_sql(RESNET, "SELECT COUNT(*) FROM CUPTI_ACTIVITY_KIND_KERNEL")
    notes = " ".join(section["notes"])
    assert "0 of" in notes and f"{kernels} outside every window" in notes
    assert "utc-anchor" in notes


def test_server_nsys_without_trace_is_one_clear_error(tmp_path):
    import subprocess
    import sys

    from tests.conftest import fixture_path

    done = subprocess.run([sys.executable, "-m", "gpuprof", "perf", "-m", "x",
                           "--server-nsys", str(fixture_path("nsys", RESNET))],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "Error: --server-nsys needs --trace (kernels go to requests by their traced compute "
        "windows). Add --trace"]


def test_requests_batched_into_one_execution_share_its_kernels():
    """Two requests with the same compute window (dynamic batching) are one execution: its
    kernels are not ambiguous, both requests get them, each with its share."""
    from gpuprof.analyze.request_kernels import kernels_per_execution

    windows = pd.DataFrame({"request_id": ["a", "b", "c"], "start_ns": [0, 0, 200],
                            "end_ns": [100, 100, 300]})
    kernels = pd.DataFrame({"start_ns": [10, 20, 250], "end_ns": [15, 30, 260]})
    layers = pd.Series(["L1", "L2", "L1"], dtype="object")
    found = kernels_per_execution(windows, kernels, layers)
    table = found.per_request.set_index("request_id")
    assert found.ambiguous == 0 and found.outside == 0
    assert list(table.loc[["a", "b"], "gpu_ns"]) == [15, 15]
    assert list(table.loc[["a", "b", "c"], "execution_requests"]) == [2, 2, 1]
    assert table.loc["c", "kernels"] == 1


def test_layer_totals_over_all_windows_match_plain_sql():
    run = Run.of(nsys_profile(RESNET))
    windows = _windows()
    per_layer = kernels_per_request(windows, run.kernels,
                                    kernel_layers(run)).per_layer.set_index("layer")
    rows = nsys_sql(RESNET, f"""
        SELECT {TEXT} AS layer, SUM(k.end - k.start), COUNT(*) FROM {KERNEL_LAYERS}
        WHERE k.start >= {windows['start_ns'].min()}
        GROUP BY layer""")
    assert len(rows) == len(per_layer)
    for layer, gpu, count in rows:
        assert (per_layer.loc[layer, "gpu_ns"], per_layer.loc[layer, "kernels"]) == (gpu, count)


def _placed():
    from gpuprof.analyze.request_kernels import execution_members, placed_kernels
    from gpuprof.pipeline.perf_run import KERNEL_COLUMNS

    run = Run.of(nsys_profile(RESNET))
    windows = _windows()
    placed = placed_kernels(windows, run.frame("kernels", KERNEL_COLUMNS), kernel_layers(run))
    return windows, placed, execution_members(windows)


def _trace_with_kernels(tmp_path):
    """The per-request trace with its GPU tracks: each window drawn as a request whose compute
    infer slice is the window (the server stages it stands in for), kernels placed in it."""
    from gpuprof.render.request_trace import write_request_trace

    windows, placed, members = _placed()
    frame = windows.assign(client_port=1, client_send_bytes=0, client_recv_bytes=0,
                           compute_input_ns=0,
                           compute_infer_ns=windows["end_ns"] - windows["start_ns"])
    path = write_request_trace(tmp_path / "path.json", frame,
                               ["compute_input_ns", "compute_infer_ns"],
                               kernels=(placed, members))
    return windows, json.loads(path.read_text())["traceEvents"], path


def test_kernel_tracks_per_request_match_plain_sql(tmp_path):
    windows, events, _ = _trace_with_kernels(tmp_path)
    kernels = [e for e in events if e["ph"] == "X" and e["pid"] == 6]
    threads = {e["tid"]: e["args"]["name"] for e in events
               if e["ph"] == "M" and e["name"] == "thread_name" and e["pid"] == 6}
    streams = nsys_sql(RESNET, f"SELECT DISTINCT deviceId, streamId FROM "
                       f"CUPTI_ACTIVITY_KIND_KERNEL WHERE start >= {windows['start_ns'].min()}")
    assert sorted(threads.values()) == sorted(f"GPU {d} stream {s}" for d, s in streams)
    per = defaultdict(lambda: [0, 0])
    for e in kernels:
        per[e["args"]["execution"]][0] += 1
        per[e["args"]["execution"]][1] += round(e["dur"] * 1000)
    for row in windows.itertuples(index=False):
        (count, gpu), = nsys_sql(RESNET, "SELECT COUNT(*), SUM(end - start) FROM "
                                 "CUPTI_ACTIVITY_KIND_KERNEL WHERE start BETWEEN "
                                 f"{row.start_ns} AND {row.end_ns}")
        assert per[row.request_id] == [count, gpu], row.request_id
    flows = [e for e in events if e.get("name") == "kernels" and e["ph"] == "s"]
    assert len(flows) == len(windows)


def test_layer_track_of_a_request_matches_plain_sql(tmp_path):
    windows, events, _ = _trace_with_kernels(tmp_path)
    w = windows.iloc[7]
    layers = {e["name"]: (round(e["ts"] * 1000), round((e["ts"] + e["dur"]) * 1000),
                          e["args"]["kernels"])
              for e in events if e["ph"] == "X" and e["pid"] == 7
              and e["args"]["execution"] == w.request_id}
    rows = nsys_sql(RESNET, f"""
        SELECT {TEXT} AS layer, MIN(k.start), MAX(k.end), COUNT(*) FROM {KERNEL_LAYERS}
        WHERE k.start BETWEEN {w.start_ns} AND {w.end_ns}
        GROUP BY layer""")
    assert len(rows) > 10
    assert layers == {layer: (start, end, count) for layer, start, end, count in rows}


def test_devtools_reads_the_kernel_and_layer_tracks(tmp_path):
    from collections import Counter

    from tests.test_chrome_trace_devtools import _summary

    _, events, path = _trace_with_kernels(tmp_path)
    written = Counter((e["pid"], e["tid"]) for e in events if e["ph"] == "X")
    summary = _summary(path)
    assert summary["warnings"] == []
    read = {(t["pid"], t["tid"]): t["slices"] for t in summary["tracks"]}
    for pid in (6, 7):
        mine = {key: n for key, n in written.items() if key[0] == pid}
        assert mine and all(read[key] == n for key, n in mine.items()), pid
