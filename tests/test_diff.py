"""`gpuprof diff` on real data: the ResNet-50 export against itself and against a copy with one
layer's kernels made slower in SQL, real exports of one program, trtexec runs, two real ONNX
Runtime runs; numbers recomputed with plain SQL / plain Python on the same files."""

from __future__ import annotations

import csv
import importlib.util
import itertools
import json
import re
import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from gpuprof.analyze.diff import compare
from gpuprof.analyze.diff_gates import evaluate, parse_gate
from gpuprof.analyze.diff_samples import run_samples
from gpuprof.cli.main import main
from gpuprof.ingest.diff_inputs import read_diff_input
from gpuprof.model import Profile

from .conftest import fixture_path, fixtures_root, kernel_totals

RESNET = "Dhruv23__DNNPartitioning__resnet50_profile_20251023_124711.sqlite"
SLOWED = "/layer3/layer3.1/conv2/Conv + /layer3/layer3.1/relu_1/Relu"
TREX = "NVIDIA__TensorRT__tools__experimental__trt-engine-explorer__examples__pytorch__resnet__A100__fp16__resnet.onnx.engine"
REPO = Path(__file__).resolve().parents[1]

# kernels whose launching runtime call lies inside one of the named layer's NVTX ranges (same thread)
LAYER_KERNELS = """
    SELECT k.rowid, k.start, k.end FROM CUPTI_ACTIVITY_KIND_KERNEL k
    JOIN CUPTI_ACTIVITY_KIND_RUNTIME r ON r.correlationId = k.correlationId
    JOIN NVTX_EVENTS n ON n.globalTid = r.globalTid AND r.start >= n.start AND r.start <= n.end
    JOIN StringIds s ON s.id = n.textId
    WHERE s.value = ?"""


def _diff(base, new):
    inputs = [read_diff_input(base), read_diff_input(new)]
    return compare(*(run_samples(i.profile, label, i.formats, i.summaries)
                     for i, label in zip(inputs, ("base", "new"))))


def _layer_total_sql(path: Path, layer: str) -> tuple[int, int]:
    with sqlite3.connect(path) as db:
        rows = db.execute(LAYER_KERNELS, (layer,)).fetchall()
    return sum(end - start for _, start, end in rows), len(rows)


@pytest.fixture(scope="module")
def slowed_export(tmp_path_factory):
    """A copy of the ResNet-50 export whose SLOWED layer's kernels take 1.5x as long."""
    source = fixture_path("nsys", RESNET)
    copy = tmp_path_factory.mktemp("slowed") / "slowed.sqlite"
    shutil.copyfile(source, copy)
    with sqlite3.connect(copy) as db:
        ids = [row[0] for row in db.execute(LAYER_KERNELS, (SLOWED,))]
        assert ids, "the layer has kernels"
        db.executemany("UPDATE CUPTI_ACTIVITY_KIND_KERNEL SET end = start + (end - start) * 3 / 2 WHERE rowid = ?",
                       [(i,) for i in ids])
    return source, copy


def test_export_against_itself_is_no_regression(capsys):
    path = fixture_path("nsys", RESNET)
    assert main(["diff", str(path), str(path), "--fail-on", "layer.total>+10%", "--fail-on", "kernel.p99>+5%",
                 "--format", "md"]) == 0
    diff = _diff(path, path)
    for table in diff.tables.values():
        assert (table["status"] == "both").all()
        assert (table["delta_total"] == 0).all()
        assert not table["significant_mean"].any() and not table["significant_p99"].any()


def test_slowed_layer_is_named_and_trips_the_gate(slowed_export, capsys):
    source, copy = slowed_export
    assert main(["diff", str(source), str(copy), "--fail-on", "layer.total>+10%", "-o",
                 str(copy.with_suffix(".md"))]) == 1
    err = capsys.readouterr().err
    failing = [line for line in err.splitlines() if line.startswith("FAIL layer.total>+10%")]
    assert failing and all(SLOWED in line for line in failing)
    assert SLOWED.replace("_", "\\_") in copy.with_suffix(".md").read_text()  # Markdown-escaped
    diff = _diff(source, copy)
    layers = diff.tables["layer"].set_index("name")
    # plain SQL on both files: the layer's kernel time before and after
    before, calls = _layer_total_sql(source, SLOWED)
    after, _ = _layer_total_sql(copy, SLOWED)
    assert layers.loc[SLOWED, "base_total"] == before and layers.loc[SLOWED, "new_total"] == after
    assert layers.loc[SLOWED, "delta_total_pct"] == pytest.approx((after - before) / before * 100)
    assert layers.loc[SLOWED, "significant_mean"]
    assert layers.loc[SLOWED, "base_count"] == calls == 50  # one sample per layer call
    others = layers.drop(index=SLOWED)
    assert (others["delta_total"] == 0).all() and not others["significant_mean"].any()
    # the same runs gated on a layer that did not change pass: the verdict is per name
    result = evaluate(parse_gate("layer.mean<-1%"), diff)
    assert not result.tripped


def test_kernel_deltas_match_plain_sql(slowed_export):
    source, copy = slowed_export
    diff = _diff(source, copy)
    kernels = diff.tables["kernel"].set_index("name")
    for path, side in ((source, "base"), (copy, "new")):
        for name, (total, count) in kernel_totals(path).items():
            assert kernels.loc[name, f"{side}_total"] == total
            assert kernels.loc[name, f"{side}_count"] == count


def _program_pairs() -> list[tuple[Path, Path]]:
    root = fixtures_root() / "nsys"
    if not root.is_dir():
        return []
    fuser = sorted(root.glob("NVIDIA__Fuser*.sqlite"))
    # every pair of Fuser exports, and each against itself (one is enough to run the checks)
    return list(itertools.combinations(fuser, 2)) + [(path, path) for path in fuser]


def test_fuser_exports_pair():
    fuser = sorted((fixtures_root() / "nsys").glob("NVIDIA__Fuser*.sqlite"))
    if len(fuser) < 2:
        pytest.skip(f"{len(fuser)} NVIDIA Fuser export(s) among the fixtures; a pair is needed "
                    "(each is compared with itself below)")


@pytest.mark.parametrize("pair", _program_pairs(), ids=lambda p: f"{p[0].name[-30:]}-{p[1].name[-30:]}")
def test_two_real_exports_of_one_program(pair, capsys):
    base, new = pair
    diff = _diff(base, new)
    kernels = diff.tables["kernel"]
    assert (kernels["status"] == "both").any()
    plain = {"base": kernel_totals(base), "new": kernel_totals(new)}
    for _, row in kernels[kernels["status"] == "both"].iterrows():
        (b, _), (n, _) = plain["base"][row["name"]], plain["new"][row["name"]]
        assert row["delta_total"] == n - b
        assert row["delta_total_pct"] == pytest.approx((n - b) / b * 100)
    code = main(["diff", str(base), str(new), "--fail-on", "kernel.total>+10%", "--fail-on", "range.total>+10%",
                 "--format", "json"])
    assert code in (0, 1)  # a verdict, never an error
    if base == new:
        assert code == 0 and "range" in diff.tables  # no TensorRT layers: NVTX ranges compared


def test_json_keys_are_snake_case_with_a_schema_version(tmp_path):
    path = fixture_path("nsys", RESNET)
    out = tmp_path / "d.json"
    assert main(["diff", str(path), str(path), "--fail-on", "layer.p99>+5%",
                 "-o", str(out)]) == 0
    doc = json.loads(out.read_text())
    assert doc["schema_version"] == 1

    def keys(node):
        if isinstance(node, dict):
            for key, value in node.items():
                yield key
                if key != "categories":
                    yield from keys(value)
                else:
                    for rows in value.values():
                        yield from keys(rows)
        elif isinstance(node, list):
            for item in node:
                yield from keys(item)
    assert all(re.fullmatch(r"[a-z0-9_]+", key) for key in keys(doc))
    assert {"layer", "kernel"} <= set(doc["categories"])


def _trex_copy(tmp_path: Path, slow_layer: str | None, tactic_layer: str | None) -> Path:
    folder = tmp_path / ("new" if slow_layer or tactic_layer else "base")
    folder.mkdir()
    for suffix in ("profile.json", "graph.json", "timing.json"):
        shutil.copyfile(fixture_path("trtexec", f"{TREX}.{suffix}"), folder / f"run.{suffix}")
    profile = json.loads((folder / "run.profile.json").read_text())
    for entry in profile[1:]:
        if entry["name"] == slow_layer:
            entry["averageMs"] *= 1.5
            entry["timeMs"] *= 1.5
    (folder / "run.profile.json").write_text(json.dumps(profile))
    graph = json.loads((folder / "run.graph.json").read_text())
    for layer in graph["Layers"]:
        if layer["Name"] == tactic_layer:
            layer["TacticName"] = "another_tactic"
    (folder / "run.graph.json").write_text(json.dumps(graph))
    return folder


def test_two_trtexec_runs(tmp_path, capsys):
    base = _trex_copy(tmp_path, None, None)
    new = _trex_copy(tmp_path, "Conv_0 + Relu_1", "Conv_3 + Relu_4")
    assert main(["diff", str(base), str(new), "--fail-on", "layer.total>+10%", "--fail-on", "latency.p99>+5%",
                 "-o", str(tmp_path / "d.md")]) == 1
    err = capsys.readouterr().err
    assert "FAIL layer.total>+10%: Conv_0 + Relu_1: +50.0%" in err and "latency.p99" not in err
    diff = _diff(base, new)
    changes = diff.layer_changes
    assert changes.to_dict("records") == [{"layer": "Conv_3 + Relu_4", "what": "tactic",
                                           "base": _tactic("Conv_3 + Relu_4"), "new": "another_tactic"}]
    layers = diff.tables["layer"].set_index("name")
    raw = {e["name"]: e["averageMs"] for e in json.loads((base / "run.profile.json").read_text())[1:]}
    assert layers.loc["Conv_0 + Relu_1", "base_total"] == round(raw["Conv_0 + Relu_1"] * 1e6)
    assert layers.loc["Conv_0 + Relu_1", "significant_mean"] is None   # one mean per layer: no verdict
    latency = diff.tables["latency"].set_index("name")
    times = np.array([t["latencyMs"] for t in json.loads((base / "run.timing.json").read_text())]) * 1e6
    assert latency.loc["latency", "base_p99"] == pytest.approx(np.percentile(times, 99), abs=1)
    assert latency.loc["latency", "delta_p99"] == 0


def _tactic(layer: str) -> str:
    graph = json.loads(fixture_path("trtexec", f"{TREX}.graph.json").read_text())
    return next(entry["TacticName"] for entry in graph["Layers"] if entry["Name"] == layer)


def _one_error(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("Error: "), err
    return err[0]


def test_runs_with_nothing_in_common_are_one_error(tmp_path, capsys):
    trtexec = _trex_copy(tmp_path, None, None)
    assert main(["diff", str(fixture_path("nsys", RESNET)), str(trtexec)]) == 2
    assert "nothing in common" in _one_error(capsys)


@pytest.mark.parametrize("gate", ["layer.total>10", "layer.total>>+10%", "layers.total>+10%",
                                  "layer.p42>+1%", "latency.p99 > five%"])
def test_bad_gate_is_one_error_exit_2(gate, capsys):
    path = fixture_path("nsys", RESNET)
    assert main(["diff", str(path), str(path), "--fail-on", gate]) == 2
    assert gate.strip() in _one_error(capsys) or "cannot parse" in capsys.readouterr().err


def test_gate_on_a_category_the_runs_lack_is_one_error(capsys):
    path = fixture_path("nsys", RESNET)
    assert main(["diff", str(path), str(path), "--fail-on", "latency.p99>+5%"]) == 2
    assert "nothing to compare" in _one_error(capsys)


def test_perf_analyzer_csvs_compared_without_verdicts(tmp_path, capsys):
    source = fixture_path("perf_analyzer", "triton-inference-server__model_analyzer__add_sub-results.csv")
    with source.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    for row in rows:
        row["p99 latency"] = str(int(row["p99 latency"]) * 2)
    slower = tmp_path / "slower.csv"
    with slower.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    assert main(["diff", str(source), str(source), "--fail-on", "latency.p99>+5%"]) == 0
    capsys.readouterr()
    assert main(["diff", str(source), str(slower), "--fail-on", "latency.p99>+5%", "--fail-on", "stage.mean>+1%"]) == 1
    err = capsys.readouterr().err
    assert "FAIL latency.p99>+5%: concurrency 2: +100.0%" in err and "no samples to judge" in err and "stage.mean" not in err
    diff = _diff(source, slower)
    latency = diff.tables["latency"].set_index("name")
    with source.open(newline="") as handle:
        plain = next(csv.DictReader(handle))
    assert latency.loc["concurrency 2", "base_p99"] == int(plain["p99 latency"]) * 1000   # µs in the CSV
    assert latency.loc["concurrency 2", "base_mean"] == int(plain["Avg latency"]) * 1000
    stages = diff.tables["stage"].set_index("name")
    assert stages.loc["Server Queue @ concurrency 2", "base_mean"] == int(plain["Server Queue"]) * 1000


def test_model_analyzer_csvs_of_two_models_have_nothing_in_common(capsys):
    one = fixture_path("perf_analyzer", "NguyenTranDat__test-docker__results__metrics-model-inference.csv")
    other = fixture_path("perf_analyzer", "minhminh2k__Triton_Backup__results__metrics-model-inference.csv")
    assert main(["diff", str(one), str(one), "--fail-on", "latency.p99>+5%"]) == 0
    capsys.readouterr()
    assert main(["diff", str(one), str(other)]) == 2
    assert "nothing in common" in _one_error(capsys)


def test_absolute_gates_parse_in_ns():
    assert parse_gate("kernel.mean>+50us").threshold == 50_000
    assert parse_gate("latency.p99 >= 0.5ms").threshold == 500_000
    assert parse_gate("layer.total<-10%").relative


@pytest.fixture(scope="module")
def two_ort_runs(tmp_path_factory):
    if importlib.util.find_spec("onnxruntime") is None:
        pytest.skip("onnxruntime not installed")
    model = REPO / "models" / "ppocr_mobile_v2_cls.onnx"
    if not model.exists():
        pytest.skip("ppocr_mobile_v2_cls.onnx not fetched (python tools/fetch_models.py --tests)")
    runs = []
    for name in ("a", "b"):
        out = tmp_path_factory.mktemp(f"ort_{name}")
        argv = ["engine", str(model), "--backend", "onnxruntime", "-n", "20", "--warmup", "2",
                "--profile-iterations", "5", "-o", str(out), "--format", "md"]
        assert main(argv) == 0
        runs.append(out / "run.gpuprof")
    return runs


def test_two_real_onnxruntime_runs(two_ort_runs, tmp_path, capsys):
    base, new = two_ort_runs
    code = main(["diff", str(base), str(new), "--fail-on", "latency.p99>+5%", "-o", str(tmp_path / "d.json")])
    assert code in (0, 1)   # timing is never asserted; a verdict either way
    diff = _diff(base, new)
    layers = diff.tables["layer"]
    assert (layers["status"] == "both").all()   # the same model: every node matched by name
    for side, path in (("base", base), ("new", new)):
        timings = Profile.load(path).layer_timings
        plain = timings.groupby("layer", observed=True)["duration_ns"].agg(["sum", "count"])
        table = layers.set_index("name")
        for name, row in plain.iterrows():
            assert table.loc[name, f"{side}_total"] == row["sum"]
            assert table.loc[name, f"{side}_count"] == row["count"]
        iterations = Profile.load(path).iterations["latency_ns"].to_numpy()
        latency = diff.tables["latency"].set_index("name")
        assert latency.loc["latency", f"{side}_p99"] == pytest.approx(np.percentile(iterations, 99))
        assert latency.loc["latency", f"{side}_count"] == len(iterations)
    doc = json.loads((tmp_path / "d.json").read_text())
    assert doc["gates"][0]["expression"] == "latency.p99>+5%"


TRITON = "cmpark0126__ml-serving-system-building__sync_poison.json"
LATER = {"COMPUTE_OUTPUT_START", "COMPUTE_END", "HTTP_SEND_START", "HTTP_SEND_END", "REQUEST_END",
         "INFER_RESPONSE_COMPLETE"}
DELAY_NS = 5_000_000


def _plain_end_to_end(records: list) -> np.ndarray:
    """Per request id: last HTTP_SEND_END minus first HTTP_RECV_START, in plain Python."""
    starts, ends = {}, {}
    for record in records:
        for stamp in record.get("timestamps", []):
            if stamp["name"] == "HTTP_RECV_START":
                starts[record["id"]] = min(starts.get(record["id"], stamp["ns"]), stamp["ns"])
            if stamp["name"] == "HTTP_SEND_END":
                ends[record["id"]] = max(ends.get(record["id"], stamp["ns"]), stamp["ns"])
    return np.array([ends[i] - starts[i] for i in starts if i in ends], dtype=float)


def test_triton_traces_compute_made_slower(tmp_path, capsys):
    source = fixture_path("triton", TRITON)
    records = json.loads(source.read_text())
    for record in records:
        for stamp in record.get("timestamps", []):
            if stamp["name"] in LATER:
                stamp["ns"] += DELAY_NS
    slower = tmp_path / "slower.json"
    slower.write_text(json.dumps(records))
    assert main(["diff", str(source), str(source), "--fail-on", "latency.p99>+5%", "--fail-on", "stage.mean>+5%"]) == 0
    capsys.readouterr()
    assert main(["diff", str(source), str(slower), "--fail-on", "latency.p99>+5%"]) == 1
    assert "FAIL latency.p99>+5%: latency:" in capsys.readouterr().err
    diff = _diff(source, slower)
    latency = diff.tables["latency"].set_index("name")
    base, new = _plain_end_to_end(json.loads(source.read_text())), _plain_end_to_end(records)
    assert latency.loc["latency", "base_count"] == len(base)
    assert latency.loc["latency", "base_p99"] == pytest.approx(np.percentile(base, 99))
    assert latency.loc["latency", "new_p99"] == pytest.approx(np.percentile(new, 99))
    stages = diff.tables["stage"].set_index("name")
    assert stages.loc["COMPUTE_INFER", "delta_mean"] == pytest.approx(DELAY_NS)
    assert stages.loc["COMPUTE_INFER", "significant_mean"]
    assert stages.loc["HTTP_RECV", "delta_mean"] == 0 and not stages.loc["HTTP_RECV", "significant_mean"]


def test_few_samples_are_not_judged_not_failed(tmp_path):
    """Kernels called once in the export: past any threshold, but one call each is no evidence."""
    source = fixture_path("nsys", RESNET)
    copy = tmp_path / "once.sqlite"
    shutil.copyfile(source, copy)
    with sqlite3.connect(copy) as db:
        once = db.execute("""SELECT s.value FROM CUPTI_ACTIVITY_KIND_KERNEL k JOIN StringIds s ON s.id = k.shortName
                             GROUP BY s.value HAVING COUNT(*) = 1""").fetchall()
        if not once:
            pytest.skip("no kernel called once in the export")
        db.execute("""UPDATE CUPTI_ACTIVITY_KIND_KERNEL SET end = end + (end - start)
                      WHERE shortName = (SELECT id FROM StringIds WHERE value = ?)""", once[0])
    diff = _diff(source, copy)
    result = evaluate(parse_gate("kernel.total>+50%"), diff)
    assert once[0][0] in result.unjudged
    assert once[0][0] not in set(result.offending.get("name", []))


COOKBOOK_INFO = "NVIDIA__trt-samples-for-hackathon-cn__cookbook__07-Tool__trtexec__model-trained-exportLayerInfo.log"


def _cookbook_run(folder: Path, rename: dict[str, str]) -> Path:
    """A trtexec folder: the real TensorRT 10 layer information (layers renamed per ``rename``,
    ONNX origin kept) and a profile of its layers, 10 µs each."""
    folder.mkdir()
    info = json.loads(fixture_path("trtexec", COOKBOOK_INFO).read_text())
    for layer in info["Layers"]:
        layer["Name"] = rename.get(layer["Name"], layer["Name"])
    (folder / "run.graph.json").write_text(json.dumps(info))
    profile = [{"count": 10}] + [{"name": layer["Name"], "timeMs": 0.1, "averageMs": 0.01, "medianMs": 0.01,
                                  "percentage": 100 / len(info["Layers"])} for layer in info["Layers"]]
    (folder / "run.profile.json").write_text(json.dumps(profile))
    return folder


def test_layers_renamed_between_engines_match_by_onnx_origin(tmp_path):
    info = json.loads(fixture_path("trtexec", COOKBOOK_INFO).read_text())
    with_origin = [layer["Name"] for layer in info["Layers"] if "[ONNX Layer:" in layer.get("Metadata", "")]
    if not with_origin:
        pytest.skip("the layer information records no ONNX origin")
    old = with_origin[0]
    base = _cookbook_run(tmp_path / "base", {})
    new = _cookbook_run(tmp_path / "new", {old: old + "_myl9_0"})
    diff = _diff(base, new)
    layers = diff.tables["layer"]
    assert (layers["status"] == "both").all() and old in set(layers["name"])
    assert any("matched by ONNX origin" in note and old in note for note in diff.notes)
