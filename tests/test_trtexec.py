"""`gpuprof trtexec` on every trtexec file in the shared fixtures, each number checked against
plain sums of the same JSON (or plain string handling of the same log)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from gpuprof.analyze import trtexec as analysis
from gpuprof.cli.main import main
from gpuprof.errors import BadInputError
from gpuprof.ingest.trtexec import find_trtexec_files, read_trtexec, read_trtexec_times
from gpuprof.ingest.trtexec_log import read_trtexec_log

from .conftest import fixtures_root


def _trtexec_dir() -> Path:
    root = fixtures_root() / "trtexec"
    if not root.is_dir():
        pytest.skip("shared fixtures trtexec/ not found (set GPUPROF_FIXTURES)")
    return root


def _profiles() -> list[Path]:
    root = fixtures_root() / "trtexec"
    return sorted(p for p in root.glob("*profile.json")) if root.is_dir() else []


def _logs() -> list[Path]:
    root = fixtures_root() / "trtexec"
    return sorted(p for p in root.glob("*.log") if "RUNNING TensorRT.trtexec" in p.read_text(errors="replace"))


def _sibling(profile: Path, suffix: str) -> Path | None:
    path = profile.with_name(profile.name.replace("profile.json", suffix))
    return path if path.exists() else None


def _plain(profile: Path) -> tuple[list[dict], dict[str, dict]]:
    """The profile's layer entries and the layer information by name, read with json alone."""
    entries = json.loads(profile.read_text())[1:]
    info = _sibling(profile, "graph.json")
    layers = {layer["Name"]: layer for layer in json.loads(info.read_text())["Layers"]} if info else {}
    return entries, layers


def _run(profile: Path):
    return read_trtexec(profile=profile, layer_info=_sibling(profile, "graph.json"),
                        times=_sibling(profile, "timing.json"))


def test_fixture_set_has_profiles():
    _trtexec_dir()
    if not _profiles():
        pytest.skip("no trtexec --exportProfile file among the fixtures")


@pytest.mark.parametrize("profile", _profiles(), ids=lambda p: p.name[-60:])
def test_time_by_layer_type_matches_plain_sums(profile):
    entries, info = _plain(profile)
    run = _run(profile)
    layers = analysis.layer_table(run.layer_profile, run.profile.engine_layers, run.formats)
    by_type = analysis.time_by_type(layers).set_index("layer_type")
    plain: dict[str, float] = {}
    for entry in entries:
        kind = info.get(entry["name"], {}).get("LayerType", "(unknown)")
        plain[kind] = plain.get(kind, 0.0) + entry["averageMs"] * 1e6
    assert set(by_type.index) == set(plain)
    for kind, ns in plain.items():
        assert by_type.loc[kind, "mean_ns"] == pytest.approx(ns, abs=len(entries))  # 1 ns rounding per layer
    # the heaviest layer and the percentages trtexec wrote
    heaviest = max(entries, key=lambda e: e["averageMs"])
    assert layers.iloc[0]["layer"] == heaviest["name"]
    assert layers.iloc[0]["share"] * 100 == pytest.approx(heaviest["percentage"], abs=0.01)


@pytest.mark.parametrize("profile", _profiles(), ids=lambda p: p.name[-60:])
def test_reformats_precision_and_tactics_match_plain_json(profile):
    entries, info = _plain(profile)
    run = _run(profile)
    layers = analysis.layer_table(run.layer_profile, run.profile.engine_layers, run.formats)
    plain_reformats = [e for e in entries if e["name"].startswith("Reformatting")
                       or info.get(e["name"], {}).get("LayerType") == "Reformat"]
    cost = analysis.reformat_cost(layers)
    assert cost["count"] == len(plain_reformats)
    assert cost["mean_ns"] == pytest.approx(sum(e["averageMs"] for e in plain_reformats) * 1e6, abs=len(entries))
    by_name = layers.set_index("layer")
    for name, layer in info.items():
        if name in by_name.index and "TacticName" in layer:
            assert by_name.loc[name, "tactic"] == layer["TacticName"]
        if name in by_name.index:
            outputs = "; ".join(dict.fromkeys(t["Format/Datatype"] for t in layer["Outputs"]))
            assert by_name.loc[name, "outputs"] == outputs
    # FP16 share: plain sum over layers whose first output format says FP16
    fp16 = sum(e["averageMs"] for e in entries
               if "FP16" in info.get(e["name"], {}).get("Outputs", [{}])[0].get("Format/Datatype", ""))
    split = analysis.precision_split(layers).set_index("precision")
    if fp16:
        assert split.loc["FP16", "mean_ns"] == pytest.approx(fp16 * 1e6, abs=len(entries))


@pytest.mark.parametrize("profile", _profiles(), ids=lambda p: p.name[-60:])
def test_pareto_line_against_plain_sort(profile):
    entries, _ = _plain(profile)
    run = _run(profile)
    layers = analysis.layer_table(run.layer_profile, run.profile.engine_layers, run.formats)
    n, share = analysis.pareto_line(layers)
    times = sorted((e["averageMs"] for e in entries), reverse=True)
    running = np.cumsum(times) / sum(times)
    plain_n = int(np.argmax(running >= 0.8 - 1e-12)) + 1
    assert n == plain_n
    assert share == pytest.approx(running[plain_n - 1], rel=1e-6)


def test_latency_percentiles_match_numpy_on_times_json():
    for profile in _profiles():
        times = _sibling(profile, "timing.json")
        if times is None:
            continue
        raw = json.loads(times.read_text())
        table = analysis.latency_table(read_trtexec_times(times)).set_index("stage")
        for key, stage in (("latencyMs", "Latency"), ("computeMs", "GPU compute"), ("h2dMs", "H2D")):
            values = np.array([row[key] for row in raw]) * 1e6
            assert table.loc[stage, "count"] == len(raw)
            for q in (50, 90, 99):
                assert table.loc[stage, f"p{q}"] == pytest.approx(np.percentile(values, q), abs=1.0)
            assert table.loc[stage, "max"] == pytest.approx(values.max(), abs=1.0)
        return
    pytest.skip("no --exportTimes file beside a profile among the fixtures")


def test_every_trtexec_log_is_read():
    logs = _logs()
    if not logs:
        pytest.skip("no trtexec console log among the fixtures")
    for path in logs:
        text = path.read_text(errors="replace")
        log = read_trtexec_log(path)
        version = re.search(r"TensorRT version: (\S+)", text)
        assert log.facts.get("TensorRT version") == (version.group(1) if version else None), path.name
        device = re.search(r"Selected Device: (.+)", text)
        assert log.facts.get("Device") == (device.group(1).strip() if device else None)
        # the first "Latency: min = ..." line, split by hand
        line = next((ln for ln in text.splitlines() if "] Latency: min = " in ln), None)
        if line is None:
            assert "Latency" not in log.summary
            continue
        parts = dict(p.strip().split(" = ") for p in line.split("Latency: ", 1)[1].split(","))
        assert log.summary["Latency"]["p99"] == float(parts["percentile(99%)"].split()[0])
        assert log.summary["Latency"]["mean"] == float(parts["mean"].split()[0])


def test_dump_profile_table_in_a_log_adds_up_to_its_total():
    for path in _logs():
        log = read_trtexec_log(path)
        if not log.profile_rows:
            continue
        total_line = next(ln for ln in path.read_text().splitlines() if ln.rstrip().endswith(" Total"))
        total_ms = float(total_line.split("]")[-1].split()[0])
        assert sum(r["timeMs"] for r in log.profile_rows) == pytest.approx(total_ms, abs=0.01 * len(log.profile_rows))
        run = read_trtexec(log=path)  # the log's table stands in for --exportProfile
        assert len(run.layer_profile) == len(log.profile_rows)
        assert run.profiled_runs == log.profile_iterations
        return
    pytest.skip("no trtexec --dumpProfile log among the fixtures")


def test_folder_discovery_pairs_files_by_name(tmp_path):
    for profile in _profiles():
        found = find_trtexec_files(profile)
        assert found["profile"] == profile
        if _sibling(profile, "graph.json"):
            assert found["layer_info"] == _sibling(profile, "graph.json")
        if _sibling(profile, "timing.json"):
            assert found["times"] == _sibling(profile, "timing.json")
        return
    pytest.skip("no trtexec profile among the fixtures")


def _cli(*args) -> int:
    return main(["trtexec", *map(str, args)])


def test_cli_writes_markdown_and_json(tmp_path, capsys):
    for profile in _profiles():
        info = _sibling(profile, "graph.json")
        if info is None:
            continue
        out = tmp_path / "t.json"
        assert _cli("--layer-info", info, "--profile", profile, "-o", out) == 0
        doc = json.loads(out.read_text())
        assert [s["key"] for s in doc["sections"]][:4] == ["layers", "layer_types", "precisions", "reformats"]
        assert _cli("--layer-info", info, "--profile", profile, "-o", tmp_path / "t.md") == 0
        assert "Time by layer type" in (tmp_path / "t.md").read_text()
        return
    pytest.skip("no profile with layer information among the fixtures")


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("Error: "), err
    return err[0]


def test_profile_without_its_layer_info_is_one_error(capsys):
    profiles = _profiles()
    if not profiles:
        pytest.skip("no trtexec profile among the fixtures")
    assert _cli("--profile", profiles[0]) == 2
    assert "without its layer information" in _one_error_line(capsys)


def test_files_of_two_engines_are_refused(capsys):
    other = [p for p in _trtexec_dir().glob("*exportLayerInfo*")]
    profiles = [p for p in _profiles() if _sibling(p, "graph.json")]
    if not other or not profiles:
        pytest.skip("needs a profile and another engine's layer information")
    assert _cli("--layer-info", other[0], "--profile", profiles[0]) == 2
    assert "different engines" in _one_error_line(capsys)


def test_profile_of_an_unknown_version_is_one_error(tmp_path, capsys):
    profiles = _profiles()
    if not profiles:
        pytest.skip("no trtexec profile among the fixtures")
    data = json.loads(profiles[0].read_text())
    # a future format: the mean renamed -- refused by name, never read as zeros
    changed = [data[0]] + [{("meanMs" if k == "averageMs" else k): v for k, v in e.items()} for e in data[1:]]
    bad = tmp_path / "new.profile.json"
    bad.write_text(json.dumps(changed))
    with pytest.raises(BadInputError, match="lacks name, timeMs, averageMs"):
        read_trtexec(profile=bad, layer_info=_sibling(profiles[0], "graph.json"))
    times = tmp_path / "t.json"
    times.write_text(json.dumps([{"latency": 1.0}]))
    assert _cli("--layer-info", _sibling(profiles[0], "graph.json"), "--profile", profiles[0], "--times", times) == 2
    assert "lack latencyMs" in _one_error_line(capsys)
