"""``gpuprof engine`` end to end: files, numbers cross-checked, bad input, Ctrl-C."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import onnx
import pandas as pd
import pytest
from onnx import TensorProto, helper

from gpuprof.analyze import stats
from gpuprof.capture.trt.device import tensorrt_unavailable_reason
from gpuprof.cli.main import main
from gpuprof.model import Profile

REPO = Path(__file__).resolve().parents[1]
FILES = ["report.md", "report.json", "layers.csv", "iterations.csv", "memory.png", "trace.json",
         "onnxruntime_profile.json", "run.gpuprof"]
SMALL = ["--iterations", "5", "--warmup", "1", "--profile-iterations", "2"]


def _real(name: str) -> Path:
    path = REPO / "models" / name
    if not path.exists():
        pytest.skip(f"{name} not fetched (python tools/fetch_models.py --tests)")
    return path


def _sections(report: dict) -> dict[str, dict]:
    return {s["key"]: s for s in report["sections"]}


@pytest.fixture(scope="module")
def det_run(tmp_path_factory):
    """PP-OCRv4 det at 160x160 through the CLI, as a user would run it."""
    out = tmp_path_factory.mktemp("det")
    argv = ["engine", str(_real("ppocrv4_det.onnx")), "--shapes", "x:1x3x160x160", "-o", str(out),
            "--top", "5", *SMALL]
    return out, argv


def test_engine_writes_every_file(det_run, capsys):
    out, argv = det_run
    assert main(argv) == 0
    captured = capsys.readouterr()
    for name in FILES:
        if name in ("memory.png", "trace.json") and f"Skipped {name}" in captured.err:
            continue  # plots/trace ship separately; the report must work without them
        assert (out / name).stat().st_size > 0, name
    assert "Backend: ONNX Runtime" in captured.out
    assert "Top 5 of" in captured.out and "% of layer time" in captured.out
    assert "Peak process RSS" in captured.out


def test_latency_matches_numpy_on_the_saved_iterations(det_run):
    out, _ = det_run
    iterations = Profile.load(out / "run.gpuprof").iterations
    values = iterations["latency_ns"].to_numpy(dtype=float) / 1e6
    rows = _sections(json.loads((out / "report.json").read_text()))["latency"]["rows"]
    unit = [k for k in rows[0] if k.startswith("value")][0]
    assert unit == "value_ms"
    by_stat = {r["statistic"]: r[unit] for r in rows}
    for q in stats.DEFAULT_PERCENTILES:
        assert by_stat[f"p{q:g}"] == pytest.approx(np.percentile(values, q, method="linear"))
    assert by_stat["mean"] == pytest.approx(values.mean())
    assert by_stat["min"] == pytest.approx(values.min()) and by_stat["max"] == pytest.approx(values.max())
    p999 = next(r for r in rows if r["statistic"] == "p99.9")
    assert p999["note"].startswith("unreliable")
    csv = pd.read_csv(out / "iterations.csv")
    assert len(csv) == 5 and csv["latency_ms"].to_numpy() == pytest.approx(values)


def test_layer_csv_sums_to_the_profiled_session_time(det_run):
    out, _ = det_run
    profile = Profile.load(out / "run.gpuprof")
    layers = pd.read_csv(out / "layers.csv")
    unit = 1e3 if "total_us" in layers else 1e6
    total_col = "total_us" if unit == 1e3 else "total_ms"
    assert layers[total_col].sum() * unit == pytest.approx(profile.layer_timings["duration_ns"].sum())
    runs = pd.DataFrame(profile.meta.extra["profile_runs"])
    # Tolerance: layer times fall short of ORT's own run time by the executor's work between
    # nodes, and exceed it at most by 1 us rounding per node.
    nodes_per_run = len(profile.layer_timings) / len(runs)
    assert layers[total_col].sum() * unit <= runs["run_ns"].sum() + nodes_per_run * len(runs) * 1000
    assert layers[total_col].sum() * unit >= 0.5 * runs["run_ns"].sum()
    assert layers["cum_percent"].iloc[-1] == pytest.approx(100.0)


def test_report_json_and_markdown(det_run):
    out, _ = det_run
    report = json.loads((out / "report.json").read_text())
    assert report["schema_version"] == 1 and report["kind"] == "engine"
    assert report["facts"]["backend"].startswith("ONNX Runtime ")
    assert "x: 1x3x160x160" in report["facts"]["inputs"]
    keys = list(_sections(report))
    assert keys[:5] == ["latency", "iterations", "layers", "layer_types", "memory"]
    memory = _sections(report)["memory"]
    assert {r["phase"] for r in memory["rows"]} >= {"load", "warmup", "timed", "profiled"}
    listed = {row["file"] for row in _sections(report)["files"]["rows"]}
    assert listed == {p.name for p in out.iterdir() if not p.name.startswith(".")}
    md = (out / "report.md").read_text()
    assert md.startswith("# gpuprof engine: ppocrv4\\_det.onnx")
    assert "(PARTIAL" not in md


@pytest.mark.parametrize("fmt", ["json", "md", "csv"])
def test_stdout_formats(tmp_path, capsys, fmt):
    model = _real("ppocr_mobile_v2_cls.onnx")
    argv = ["engine", str(model), "--shapes", "1x3x48x96", "-o", str(tmp_path), "--format", fmt,
            "--iterations", "3", "--warmup", "0", "--profile-iterations", "1"]
    assert main(argv) == 0
    text = capsys.readouterr().out
    if fmt == "json":
        assert json.loads(text)["title"] == "gpuprof engine: ppocr_mobile_v2_cls.onnx"
    elif fmt == "md":
        assert text.startswith("# gpuprof engine")
    else:
        assert text.splitlines()[0].startswith("rank,layer,type,calls")


def test_no_layer_profile(tmp_path, capsys):
    (tmp_path / "layers.csv").write_text("stale,from,an,earlier,run\n")
    (tmp_path / "keep.txt").write_text("not ours")
    argv = ["engine", str(_real("ppocr_mobile_v2_cls.onnx")), "--shapes", "1x3x48x96", "-o",
            str(tmp_path), "--iterations", "3", "--warmup", "0", "--no-layer-profile"]
    assert main(argv) == 0
    assert "per-layer profile skipped (--no-layer-profile)" in capsys.readouterr().out
    assert not (tmp_path / "layers.csv").exists() and not (tmp_path / "onnxruntime_profile.json").exists()
    assert (tmp_path / "iterations.csv").exists() and (tmp_path / "keep.txt").exists()


def test_help_lists_the_options(capsys):
    assert main(["engine", "--help"]) == 0
    text = capsys.readouterr().out
    for option in ("--backend", "--iterations", "--warmup", "--shapes", "--out-dir", "--format",
                   "--no-layer-profile"):
        assert option in text


# -- options -> each backend's run configuration (pure, no GPU needed) -----------------------

def _configs(**given):
    from gpuprof.cli.engine import RunArgs, ort_run_config, trt_run_config

    args = RunArgs(Path("m.onnx"), Path("out"), **given)
    return trt_run_config(args, nsys_available=False), ort_run_config(args)


def test_options_not_given_take_each_backends_own_defaults():
    from gpuprof.capture.ort import OrtRunConfig
    from gpuprof.capture.trt.pipeline import TrtRunConfig

    trt, ort = _configs()
    trt_default, ort_default = TrtRunConfig(Path("m"), Path("o")), OrtRunConfig(Path("m"))
    for name in ("iterations", "min_seconds", "warmup", "profile_iterations"):
        assert getattr(trt, name) == getattr(trt_default, name), name
        assert getattr(ort, name) == getattr(ort_default, name), name
    assert trt.warmup != ort.warmup  # the point: TensorRT no longer gets ONNX Runtime's warm-up
    assert trt.options.shapes == {} and trt.layer_profile and trt.nsys is False
    assert trt.out_dir == Path("out") / "trt_run"


def test_each_option_reaches_the_tensorrt_run():
    trt, ort = _configs(iterations=7, warmup=2, profile_iterations=3, shapes="x:1x3x64x64",
                        layer_profile=False)
    assert (trt.iterations, trt.warmup, trt.profile_iterations) == (7, 2, 3)
    assert trt.options.shapes == {"x": (1, 3, 64, 64)} and trt.layer_profile is False
    assert (ort.iterations, ort.warmup, ort.profile_iterations) == (7, 2, 3)
    assert ort.shapes == {"x": (1, 3, 64, 64)} and ort.layer_profile is False


def test_duration_alone_means_auto_iterations_on_both_backends():
    trt, ort = _configs(duration=0.5)
    assert (trt.iterations, trt.min_seconds) == (None, 0.5)
    assert (ort.iterations, ort.min_seconds) == (None, 0.5)
    trt, ort = _configs(duration=0.5, iterations=4)  # a count wins, as the help says
    assert trt.iterations == ort.iterations == 4


def test_tensorrt_runner_gets_the_count_or_the_duration():
    from gpuprof.capture.trt.pipeline import _runner_args
    from gpuprof.capture.trt.runner import parse_args

    sidecar = {"tensorrt": {"module": "tensorrt_rtx"}}
    for given, expected in (({"iterations": 7}, (7, None)), ({"duration": 0.5}, (None, 0.5)),
                            ({}, (50, None))):
        config, _ = _configs(**given)
        settings = parse_args(["--plan", "p.plan", "--out", "o", *_runner_args(config, sidecar)])
        assert settings.iterations == expected[0], given
        if expected[1] is not None:
            assert settings.min_seconds == expected[1]


def test_timed_pass_length_rule():
    from gpuprof.capture.timed_count import timed_done

    assert timed_done(3, 0, iterations=3, min_seconds=99) and not timed_done(2, 10**12, 3, 0)
    # auto: both floors must be met, the cap ends it regardless
    assert not timed_done(9, 10**12, None, 2.0, min_iterations=10)
    assert not timed_done(10, 1_999_999_999, None, 2.0, min_iterations=10)
    assert timed_done(10, 2_000_000_000, None, 2.0, min_iterations=10)
    assert timed_done(50, 0, None, 2.0, min_iterations=10, max_iterations=50)


def test_requested_count_rule():
    """-n wins; --duration alone means auto; neither gives the backend's default count."""
    from gpuprof.capture.timed_count import DEFAULT_MIN_SECONDS, requested

    assert requested(7, None, 50) == (7, DEFAULT_MIN_SECONDS)
    assert requested(7, 0.5, 50) == (7, 0.5)
    assert requested(None, 0.5, 50) == (None, 0.5)
    assert requested(None, None, 50) == (50, DEFAULT_MIN_SECONDS)
    assert requested(None, None, None) == (None, DEFAULT_MIN_SECONDS)


def test_help_states_the_real_defaults(capsys):
    from gpuprof.capture.ort import OrtRunConfig
    from gpuprof.capture.trt.pipeline import TrtRunConfig

    assert main(["engine", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    trt, ort = TrtRunConfig(Path("m"), Path("o")), OrtRunConfig(Path("m"))
    assert f"Default: {ort.warmup} on ONNX Runtime, {trt.warmup} on TensorRT" in text
    assert (f"Default: {ort.profile_iterations} on ONNX Runtime, {trt.profile_iterations} on "
            "TensorRT") in text
    assert f"at least {ort.min_iterations} and at least --duration" in text
    assert f"without --duration: {trt.iterations})" in text
    assert f"Default: {ort.min_seconds:g}." in text


# -- bad input: one line, non-zero exit ---------------------------------------------------

def _unsupported_op_model(tmp_path) -> Path:
    node = helper.make_node("NotARealOp", ["x"], ["y"], name="n0")
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = tmp_path / "unsupported.onnx"
    onnx.save(model, str(path))
    return path


@pytest.mark.parametrize("case, code, message", [
    ("missing", 2, "does not exist"),
    ("directory", 2, "is a directory"),
    ("random", 2, "is not an ONNX model"),
    ("text", 2, "is not an ONNX model"),
    ("unsupported", 4, "cannot load 'unsupported.onnx'"),
    ("bad_shapes", 2, "has rank 4"),
    ("unknown_input", 2, "model's inputs are: x"),
])
def test_bad_input_is_one_error_line(tmp_path, capsys, case, code, message):
    paths = {
        "missing": tmp_path / "nope.onnx",
        "directory": tmp_path,
        "random": tmp_path / "random.onnx",
        "text": tmp_path / "notes.onnx",
        "unsupported": None,
        "bad_shapes": _real("ppocrv4_det.onnx"),
        "unknown_input": _real("ppocrv4_det.onnx"),
    }
    (tmp_path / "random.onnx").write_bytes(np.random.default_rng(3).bytes(2048))
    (tmp_path / "notes.onnx").write_text("hello, this is not a model\n")
    path = paths[case] or _unsupported_op_model(tmp_path)
    argv = ["engine", str(path), "-o", str(tmp_path / "out"), *SMALL]
    if case == "bad_shapes":
        argv += ["--shapes", "x:1x3x64"]
    if case == "unknown_input":
        argv += ["--shapes", "images:1x3x64x64"]
    assert main(argv) == code
    err = [line for line in capsys.readouterr().err.strip().splitlines()
           if not line.startswith("gpuprof: ")]  # progress lines (stderr is not a terminal)
    assert len(err) == 1 and err[0].startswith("Error: ") and message in err[0], err
    assert "Traceback" not in err[0]
    if case == "unsupported":  # ORT repeats the full path; the line names the file once
        assert str(tmp_path) not in err[0]


@pytest.mark.skipif(tensorrt_unavailable_reason() is None, reason="TensorRT can run here")
def test_backend_tensorrt_explains_why_not(tmp_path, capsys):
    argv = ["engine", str(_real("ppocrv4_det.onnx")), "--backend", "tensorrt", "-o", str(tmp_path)]
    assert main(argv) == 3
    err = capsys.readouterr().err
    assert "TensorRT cannot run here" in err and "--backend onnxruntime" in err


# -- Ctrl-C -------------------------------------------------------------------------------

def test_ctrl_c_writes_partial_reports_and_exits_non_zero(tmp_path):
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "gpuprof", "engine", str(_real("ppocr_mobile_v2_cls.onnx")),
           "--shapes", "1x3x48x96", "-o", str(out), "--iterations", "100000000", "--warmup", "0"]
    # SIGINT as a terminal gives it: a runner that starts the suite in the background (shell
    # '&') leaves SIGINT ignored, which children inherit, and Ctrl-C would then never arrive.
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=tmp_path, env=os.environ | {"PYTHONPATH": str(REPO)},
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    lines = []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # wait until the timed pass has started
        line = proc.stderr.readline()
        lines.append(line)
        if "timed pass" in line or not line:
            break
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
    stderr = "".join(lines) + stderr
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr and "Interrupted: partial results written" in stderr
    assert "PARTIAL: interrupted during timed" in stdout
    md = (out / "report.md").read_text()
    assert "PARTIAL" in md
    assert len(pd.read_csv(out / "iterations.csv")) > 0


def test_help_does_not_import_the_backends():
    code = ("import sys; from gpuprof.cli.main import main; rc = main(['engine', '--help']); "
            "heavy = [m for m in ('onnxruntime', 'onnx', 'tensorrt', 'matplotlib') if m in sys.modules]; "
            "sys.exit(1 if rc or heavy else 0)")
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-500:] + result.stderr[-500:]


def test_memory_section_labels_each_source():
    """A TensorRT run's allocator trace and nsys memory are not called RSS."""
    import pandas as pd

    from gpuprof.model import conform
    from gpuprof.render.engine_report import _memory_section

    events = conform("memory_events", pd.DataFrame({
        "time_ns": [10, 20, 30, 40, 15, 25], "device_id": [0, 0, 0, 0, -1, -1],
        "source": ["trt_allocator"] * 4 + ["process_rss"] * 2,
        "kind": ["alloc", "alloc", "free", "alloc", "sample", "sample"],
        "bytes": [4 << 20, 2 << 20, -(2 << 20), 1 << 20, 100 << 20, 5 << 20],
        "phase": ["deserialize", "context", "inference", "inference", "load", "timed"]}))
    section = _memory_section(events, {}, origin_ns=0)
    labels = set(section.table["memory"])
    assert labels == {"TensorRT allocator, GPU 0", "process RSS"}
    notes = " ".join(section.notes)
    assert "Peak TensorRT allocator, GPU 0: 6.0 MiB, first reached in phase 'context'" in notes
    assert "bypass it" in notes and "sampled by a background thread" in notes
