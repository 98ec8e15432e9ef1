"""``gpuprof perf`` end to end against a real server on loopback, and its error lines."""

from __future__ import annotations

import json
import re

import pandas as pd
import pytest

from gpuprof.cli.main import main
from tests.conftest import REPO

MODEL = REPO / "models" / "ppocr_mobile_v2_cls.onnx"
PA_COLUMNS = ["Concurrency", "Inferences/Second", "Client Send", "Network+Server Send/Recv",
              "Server Queue", "Server Compute Input", "Server Compute Infer",
              "Server Compute Output", "Client Recv", "p50 latency", "p90 latency",
              "p95 latency", "p99 latency"]
FAST = ["-p", "300", "-r", "3", "--warmup", "100", "--max-duration", "30", "--no-live"]


@pytest.fixture(scope="module")
def server(cls_triton_server):
    return cls_triton_server


@pytest.mark.triton
def test_perf_sweep_writes_csvs_and_report(server, tmp_path, capsys):
    out, windows, joined = tmp_path / "out.csv", tmp_path / "w.csv", tmp_path / "t.csv"
    code = main(["perf", "-m", server.model_name, "-u", server.http_url,
                 "--concurrency-range", "1:2:1", "--shape", "x:1,3,48,192", *FAST,
                 "-f", str(out), "--windows-csv", str(windows), "--trace",
                 "--trace-csv", str(joined), "-o", str(tmp_path / "report.json")])
    text = capsys.readouterr().out
    assert code == 0, text
    assert "Throughput and latency per load level" in text and "p99.9" in text
    csv = pd.read_csv(out)
    assert list(csv.columns[:13]) == PA_COLUMNS and csv["Concurrency"].tolist() == [1, 2]
    assert "p99.9 latency" in csv.columns and (csv["Samples"] > 0).all()
    assert len(pd.read_csv(windows)) >= 6
    trace = pd.read_csv(joined)
    assert len(trace) > 0 and set(trace["level"]) == {1, 2}
    assert "Where a request's time goes" in text
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["schema_version"] == 1 and report["kind"] == "perf"
    sections = {s["key"]: s for s in report["sections"]}
    keys = {k for s in sections.values() for r in s["rows"] for k in r} | set(report["facts"])
    assert all(re.fullmatch(r"[a-z0-9_]+", k) for k in keys), keys
    levels = sections["levels"]["rows"]
    assert [r["concurrency"] for r in levels] == [1, 2]
    assert [r["samples"] for r in levels] == csv["Samples"].tolist()
    # the trace section's per-level means, recomputed from the per-request CSV
    means = trace.groupby("level")["client_latency_ns"].mean()
    for row in sections["trace"]["rows"]:
        assert row["mean_client_latency_ns"] == pytest.approx(means[row["level"]], rel=1e-12)


@pytest.mark.triton
def test_perf_grpc_request_rate_with_json_input(server, tmp_path, capsys):
    data = tmp_path / "input.json"
    data.write_text(json.dumps({"data": [{"x": {"content": [0.5] * (3 * 48 * 192),
                                                "shape": [1, 3, 48, 192]}}]}))
    code = main(["perf", "-m", server.model_name, "-u", server.grpc_url, "-i", "grpc",
                 "--request-rate-range", "20:40:20", "--shape", "x:1,3,48,192",
                 "--input-data", str(data), *FAST, "-f", str(tmp_path / "r.csv")])
    assert code == 0, capsys.readouterr()
    csv = pd.read_csv(tmp_path / "r.csv")
    assert csv.columns[0] == "Request Rate" and csv["Request Rate"].tolist() == [20, 40]


@pytest.mark.triton
def test_perf_errors_are_one_line(server, capsys):
    code = main(["perf", "-m", "nope", "-u", server.http_url, "--no-live"])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("Error: model 'nope' is not available")
    assert len(err.strip().splitlines()) == 1
    code = main(["perf", "-m", server.model_name, "-u", server.http_url, "--no-live"])
    err = capsys.readouterr().err
    assert code == 2 and "needs its shape fully defined" in err and "--shape x:" in err


def test_perf_server_down(capsys):
    from gpuprof.capture.triton_server import free_port

    pytest.importorskip("tritonclient.http")
    code = main(["perf", "-m", "m", "-u", f"127.0.0.1:{free_port()}", "--no-live"])
    err = capsys.readouterr().err
    assert code == 4 and err.startswith("Error: cannot reach Triton at 127.0.0.1:")
    assert len(err.strip().splitlines()) == 1


def test_perf_rejects_two_modes(capsys):
    code = main(["perf", "-m", "m", "--concurrency-range", "1", "--request-rate-range", "5"])
    assert code == 2 and "exclude each other" in capsys.readouterr().err


def test_perf_help():
    assert main(["perf", "--help"]) == 0


@pytest.mark.parametrize("mode,level,shown", [("concurrency", 2, "concurrency 2 (2/3)"),
                                              ("request_rate", 12.5, "12.5 req/s (2/3)")])
def test_live_display_names_the_level(mode, level, shown, capsys):
    from types import SimpleNamespace

    from gpuprof.cli.perf_live import LiveDisplay

    with LiveDisplay(enabled=True) as display:  # not a terminal: one line per finished level
        display("level", {"level": level, "mode": mode, "index": 1, "total": 3})
        done = SimpleNamespace(metrics={"throughput_infer_s": 10.0}, stable=True)
        display("level_done", {"level": level, "result": done})
    assert f"{shown}: 10.0 infer/s (stable)" in capsys.readouterr().err


@pytest.mark.parametrize("args,message", [
    (["--waterfall", "w.png"], "Error: --waterfall needs --net. Add --net"),
    (["--chrome-trace", "t.json"], "Error: --chrome-trace needs --trace or --net. Add --trace "
                                   "(server stages) or --net (eBPF capture, as root)"),
    (["--trace-rate", "0"], "Error: --trace-rate must be 'auto' or a whole number >= 1, not '0'"),
    (["--trace-level", "TIMESTAMPS,TENSORS"], "Error: --trace-level needs --trace. Add --trace"),
    (["--trace", "--trace-level", "TENSORS"], "Error: --trace joins each request by its "
                                              "timestamps: TENSORS alone has none"),
    (["--trace", "--trace-level", "NONE"], "Error: --trace-level must be TIMESTAMPS or "
                                           "TIMESTAMPS,TENSORS, not 'NONE'"),
])
def test_perf_net_and_trace_options_are_checked_first(args, message, capsys):
    code = main(["perf", "-m", "m", "-u", "127.0.0.1:1", "--no-live", *args])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith(message)


def test_perf_net_without_the_capture_tools_is_one_line(capsys, monkeypatch):
    """--net checks root, bpftrace, tracefs and BTF before any load is sent (here: bpftrace
    hidden from PATH)."""
    monkeypatch.setenv("PATH", "/nonexistent")
    code = main(["perf", "-m", "m", "-u", "127.0.0.1:1", "--net", "--no-live"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code != 0 and len(err) == 1 and ("bpftrace" in err[0] or "root" in err[0])
