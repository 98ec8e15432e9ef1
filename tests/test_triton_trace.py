"""Triton trace parsing and request analysis, on the real shared fixture and on small traces
written here in Triton's own layout (one object per header and per timestamp)."""

from __future__ import annotations

import json
import random
from collections import defaultdict
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gpuprof.analyze import requests as A
from gpuprof.errors import BadInputError, NoDataError
from gpuprof.ingest.triton_trace import (
    find_trace_files,
    parse_trace_part,
    read_trace_parts,
    read_triton_trace,
)
from gpuprof.model import SCHEMAS
from gpuprof.render.triton_report import ascii_timeline, build_triton_report, gap_bars, trace_facts
from gpuprof.render.triton_trace_json import chrome_trace
from tests.conftest import fixture_path, fixtures_root

FIXTURE = "cmpark0126__ml-serving-system-building__sync_poison.json"

HTTP = ["HTTP_RECV_START", "HTTP_RECV_END", "REQUEST_START", "QUEUE_START", "COMPUTE_START",
        "COMPUTE_INPUT_END", "COMPUTE_OUTPUT_START", "COMPUTE_END", "INFER_RESPONSE_COMPLETE",
        "REQUEST_END", "HTTP_SEND_START", "HTTP_SEND_END"]
GRPC = ["GRPC_WAITREAD_START", "GRPC_WAITREAD_END", *HTTP[2:10], "GRPC_SEND_START", "GRPC_SEND_END"]
CORE = HTTP[2:10]


def records(trace_id: int, model: str, names: list[str], t0: int, step: int = 1000,
            parent: int | None = None, request_id: str | None = None) -> list[dict]:
    """Objects as Triton writes them: a header, then one object per timestamp."""
    header = {"id": trace_id, "model_name": model, "model_version": 1}
    if request_id:
        header["request_id"] = request_id
    if parent:
        header["parent_id"] = parent
    stamps = [{"id": trace_id, "timestamps": [{"name": n, "ns": t0 + i * step}]}
              for i, n in enumerate(names)]
    return [stamps[0], header, *stamps[1:]] if len(stamps) > 1 else [header, *stamps]


def write(path: Path, objects: list, text: str | None = None) -> Path:
    path.write_text(text if text is not None else json.dumps(objects))
    return path


@pytest.fixture(scope="module")
def fixture_trace():
    return read_triton_trace(fixture_path("triton", FIXTURE))


# --- the real fixture ----------------------------------------------------------------------

def test_fixture_requests_table(fixture_trace):
    profile = fixture_trace.profile
    req = profile.requests
    assert list(req.columns) == list(SCHEMAS["requests"])
    assert req["trace_id"].nunique() == 200
    assert req.groupby("trace_id").size().eq(9).all()
    assert set(req["stage"].astype(str)) == {"END_TO_END", "HTTP_RECV", "REQUEST", "QUEUE", "COMPUTE",
                                            "COMPUTE_INPUT", "COMPUTE_INFER", "COMPUTE_OUTPUT",
                                            "HTTP_SEND"}
    assert (req["end_ns"] >= req["start_ns"]).all()
    assert set(req["model"].astype(str)) == {"resnet50"}
    assert (req["parent_id"] == -1).all()
    assert profile.meta.tool == "triton"
    assert profile.meta.clocks["triton"].method == "CLOCK_MONOTONIC"
    assert [s.name for s in profile.meta.sources] == [FIXTURE]
    assert len(fixture_trace.timestamps) == 2400
    assert not fixture_trace.partial and fixture_trace.issues == []


def _independent_stamps(path: Path) -> dict[int, dict[str, int]]:
    by_id: dict[int, dict[str, int]] = defaultdict(dict)
    for obj in json.loads(path.read_text()):
        for stamp in obj.get("timestamps", []):
            by_id[obj["id"]][stamp["name"]] = stamp["ns"]
    return by_id


def test_fixture_stage_means_match_a_direct_computation(fixture_trace):
    by_id = _independent_stamps(fixture_path("triton", FIXTURE))
    pairs = {"QUEUE": ("QUEUE_START", "COMPUTE_START"),
             "COMPUTE_INFER": ("COMPUTE_INPUT_END", "COMPUTE_OUTPUT_START"),
             "HTTP_RECV": ("HTTP_RECV_START", "HTTP_RECV_END"),
             "END_TO_END": ("HTTP_RECV_START", "HTTP_SEND_END")}
    tree = A.request_tree(fixture_trace.headers)
    summary = A.stage_summary(fixture_trace.profile.requests, tree).set_index("stage")
    for stage, (start, end) in pairs.items():
        durations = [s[end] - s[start] for s in by_id.values()]
        assert summary.loc[stage, "mean"] == pytest.approx(sum(durations) / len(durations))
        assert summary.loc[stage, "p90"] == pytest.approx(np.percentile(durations, 90))
        assert summary.loc[stage, "p97"] == pytest.approx(np.percentile(durations, 97))
        assert summary.loc[stage, "count"] == 200
        # p97 needs 334 samples (10 beyond it), p99 1000
        assert summary.loc[stage, "unreliable"] == "p97, p99, p99.9"


def test_fixture_layout_matches_the_seed_computation(fixture_trace):
    by_id = _independent_stamps(fixture_path("triton", FIXTURE))
    tree = A.request_tree(fixture_trace.headers)
    layout = A.stage_layout(fixture_trace.timestamps, tree).set_index("name")
    for name in HTTP:
        expected = sum(s[name] - s["HTTP_RECV_START"] for s in by_id.values()) / len(by_id)
        assert layout.loc[name, "mean_offset_ns"] == pytest.approx(expected)
    assert layout["mean_offset_ns"].is_monotonic_increasing
    assert layout["delta_ns"].sum() == pytest.approx(layout["mean_offset_ns"].iloc[-1])
    assert (layout["requests"] == 200).all()


def test_fixture_has_no_incomplete_requests(fixture_trace):
    assert A.incomplete_requests(fixture_trace.timestamps, A.request_tree(fixture_trace.headers)).empty


# --- Triton's file layouts -----------------------------------------------------------------

def test_grpc_stages_and_receive_anchor(tmp_path):
    objs = records(1, "m", GRPC, t0=10_000, step=100)
    trace = read_triton_trace(write(tmp_path / "grpc.json", objs))
    req = trace.profile.requests.set_index("stage")
    assert {"GRPC_WAITREAD", "GRPC_SEND", "END_TO_END"} <= set(req.index)
    assert "HTTP_RECV" not in req.index
    # received at GRPC_WAITREAD_END (index 1): wait/read includes waiting for the client
    assert req.loc["END_TO_END", "start_ns"] == 10_100
    assert req.loc["END_TO_END", "end_ns"] == 10_000 + 100 * (len(GRPC) - 1)
    layout = A.stage_layout(trace.timestamps, A.request_tree(trace.headers))
    assert layout["name"].iloc[0] == "GRPC_WAITREAD_END"
    assert "GRPC_WAITREAD_START" not in set(layout["name"])
    assert A.incomplete_requests(trace.timestamps, A.request_tree(trace.headers)).empty


def test_tensors_level_records(tmp_path):
    objs = records(1, "m", HTTP, t0=0)
    objs += [{"id": 1, "activity": "TENSOR_QUEUE_INPUT",
              "tensor": {"name": "INPUT0", "data": "0.1,0.2", "shape": "1,2", "dtype": "FP32"}},
             {"id": 1, "activity": "TENSOR_BACKEND_OUTPUT",
              "tensor": {"name": "OUTPUT0", "data": "1", "shape": "1", "dtype": "INT64"}}]
    trace = read_triton_trace(write(tmp_path / "t.json", objs))
    assert len(trace.tensors) == 2
    assert "data" not in trace.tensors.columns
    summary = A.tensor_summary(trace.tensors, trace.headers)
    row = summary.set_index("tensor").loc["INPUT0"]
    assert (row["model"], row["activity"], row["count"], row["dtype"]) == ("m", "TENSOR_QUEUE_INPUT", 1, "FP32")
    assert trace.issues == []


def test_split_out_of_order_records_give_the_same_table(tmp_path):
    objs = records(1, "a", HTTP, t0=0) + records(2, "b", HTTP, t0=500, step=700)
    ordered = read_triton_trace(write(tmp_path / "ordered.json", objs)).profile.requests
    shuffled = objs[:]
    random.Random(7).shuffle(shuffled)
    # several timestamps of one request merged into one object, as older servers wrote them
    merged = [{"id": 1, "timestamps": [o["timestamps"][0] for o in shuffled
                                       if o.get("id") == 1 and "timestamps" in o][:3]}]
    rest = [o for o in shuffled if not (o.get("id") == 1 and o.get("timestamps")
                                        and o["timestamps"][0] in merged[0]["timestamps"])]
    (tmp_path / "shuffled").mkdir()
    got = read_triton_trace(write(tmp_path / "shuffled" / "ordered.json", merged + rest)).profile.requests
    pd.testing.assert_frame_equal(got, ordered)


@settings(max_examples=25, deadline=None)
@given(st.permutations(records(1, "a", HTTP, t0=0) + records(2, "a", GRPC, t0=50, step=300)))
def test_any_object_order_gives_the_same_stages(tmp_path_factory, objs):
    path = write(tmp_path_factory.mktemp("perm") / "p.json", list(objs))
    req = read_triton_trace(path).profile.requests
    durations = dict(zip(zip(req["trace_id"], req["stage"].astype(str)), req["end_ns"] - req["start_ns"]))
    assert durations[(1, "QUEUE")] == 1000 and durations[(2, "QUEUE")] == 300
    assert durations[(1, "END_TO_END")] == 11_000 and durations[(2, "END_TO_END")] == 3_000


def _ensemble_objects() -> list[dict]:
    # ensemble parent (no compute of its own) with two composing models, plus a lone request
    parent = ["HTTP_RECV_START", "HTTP_RECV_END", "REQUEST_START", "QUEUE_START", "REQUEST_END",
              "HTTP_SEND_START", "HTTP_SEND_END"]
    objs = records(5, "ens", parent, t0=0, step=10_000, request_id="req-5")
    objs += records(6, "pre", CORE, t0=25_000, step=100, parent=5)
    objs += records(7, "infer", CORE, t0=26_000, step=200, parent=5)
    objs += records(1, "infer", HTTP, t0=100_000)
    return objs


def test_ensemble_children_sit_under_their_parent(tmp_path):
    trace = read_triton_trace(write(tmp_path / "ens.json", _ensemble_objects()))
    tree = A.request_tree(trace.headers)
    assert tree["trace_id"].tolist() == [1, 5, 6, 7]
    assert tree.set_index("trace_id").loc[[6, 7], "depth"].tolist() == [1, 1]
    assert tree.set_index("trace_id").loc[7, "root_id"] == 5
    assert A.incomplete_requests(trace.timestamps, tree).empty
    assert A.model_callers(trace.headers) == {"pre": ["ens"], "infer": ["ens"]}
    wide = A.per_request(trace.profile.requests, tree).set_index("trace_id")
    # a child's offsets are measured from its root's first receive
    assert wide.loc[6, "REQUEST_offset_ns"] == 25_000
    assert wide.loc[5, "REQUEST_offset_ns"] == 20_000
    assert trace.profile.requests.query("trace_id == 5")["request_id"].eq("req-5").all()


def test_select_model_keeps_children(tmp_path):
    trace = read_triton_trace(write(tmp_path / "ens.json", _ensemble_objects()))
    assert sorted(A.select_model(trace.headers, "ens")["trace_id"]) == [5, 6, 7]
    assert sorted(A.select_model(trace.headers, "infer")["trace_id"]) == [1, 7]
    kept = A.keep_keys(trace.timestamps, A.select_model(trace.headers, "pre"))
    assert set(kept["trace_id"]) == {6}


def test_parent_cycle_does_not_lose_requests(tmp_path):
    objs = records(1, "a", CORE, t0=0, parent=2) + records(2, "b", CORE, t0=0, parent=1)
    trace = read_triton_trace(write(tmp_path / "cycle.json", objs))
    assert sorted(A.request_tree(trace.headers)["trace_id"]) == [1, 2]


def test_log_frequency_parts(tmp_path):
    parts = {0: records(1, "m", HTTP, 0), 1: records(2, "m", HTTP, 10**6),
             10: records(3, "m", HTTP, 2 * 10**6), 2: records(4, "m", HTTP, 3 * 10**6)}
    for index, objs in parts.items():
        write(tmp_path / f"trace.json.{index}", objs)
    (tmp_path / "notes.txt").write_text("not a trace")
    by_base = read_triton_trace(tmp_path / "trace.json")
    assert sorted(by_base.profile.requests["trace_id"].unique()) == [1, 2, 3, 4]
    assert [s.name for s in by_base.profile.meta.sources] == [
        "trace.json.0", "trace.json.1", "trace.json.2", "trace.json.10"]
    assert set(by_base.profile.requests["source"].astype(str)) == {"trace.json"}
    for spec in (tmp_path, str(tmp_path / "trace.json.*")):
        assert len(find_trace_files(spec)) == 4
    one = read_triton_trace(tmp_path / "trace.json.1")
    assert one.profile.requests["trace_id"].unique().tolist() == [2]


def _same_trace(got, expected):
    for table in ("timestamps", "headers", "tensors"):
        pd.testing.assert_frame_equal(getattr(got, table), getattr(expected, table))
    pd.testing.assert_frame_equal(got.profile.tables["requests"], expected.profile.tables["requests"])
    assert (got.partial, got.issues) == (expected.partial, expected.issues)


def test_parts_entry_point_matches_reading_the_files(tmp_path):
    """read_trace_parts, given what parse_trace_part read, is read_triton_trace without the
    second parse: on every real Triton trace fixture, whole and split into numbered parts."""
    fixtures = sorted(p for p in (fixtures_root() / "triton").glob("*.json*") if p.is_file())
    if not fixtures:
        pytest.skip("no shared Triton trace fixtures (set GPUPROF_FIXTURES)")
    for fixture in fixtures:
        records, whole = parse_trace_part(fixture)
        assert whole
        expected = read_triton_trace(fixture)
        preread = {fixture: records}
        _same_trace(read_trace_parts([fixture], preread), expected)
        assert preread == {}  # the records were taken, not kept alive by the caller's dict
        assert [s.name for s in expected.profile.meta.sources] == [fixture.name]

        # numbered parts of one run, handed over out of order, against the files in a folder
        run = tmp_path / fixture.stem
        run.mkdir()
        objects = records.objects
        cuts = [0, len(objects) // 3, len(objects) // 2, len(objects)]
        parts = {}
        for index, (lo, hi) in enumerate(zip(cuts, cuts[1:])):
            path = write(run / f"trace.json.{(index * 9) % 11}", objects[lo:hi])  # .0 .9 .7
            parts[path] = parse_trace_part(path)[0]
        expected = read_triton_trace(run)
        got = read_trace_parts(list(parts)[::-1], parts)
        _same_trace(got, expected)
        assert got.profile.meta.sources == expected.profile.meta.sources
        assert set(got.profile.tables["requests"]["source"].astype(str)) == {"trace.json"}


def test_parts_entry_point_reports_parts_as_the_files_are(tmp_path):
    """Parts not read before (not a trace, cut short) are read and reported as the files are."""
    good = write(tmp_path / "trace.json.0", records(1, "m", HTTP, 0))
    chrome = write(tmp_path / "trace.json.1", [], '{"traceEvents": []}')
    cut = write(tmp_path / "trace.json.2", [], json.dumps(records(2, "m", HTTP, 10**6))[:-40])

    _same_trace(read_trace_parts([good, chrome, cut], {good: parse_trace_part(good)[0]}),
                read_triton_trace(tmp_path))
    assert parse_trace_part(cut, salvage=False) == (None, False)  # cut short is never whole
    assert parse_trace_part(write(tmp_path / "empty.json", [], ""), salvage=False) == (None, False)
    with pytest.raises(BadInputError, match="Chrome trace"):
        read_trace_parts([chrome], {})


def test_two_runs_with_the_same_ids_stay_apart(tmp_path):
    write(tmp_path / "run_a.json", records(1, "m", HTTP, 0))
    write(tmp_path / "run_b.json", records(1, "m", HTTP, 5000, step=2000))
    trace = read_triton_trace(tmp_path)
    assert len(trace.headers) == 2
    e2e = trace.profile.requests.query("stage == 'END_TO_END'")
    assert sorted((e2e["end_ns"] - e2e["start_ns"]).tolist()) == [11_000, 22_000]


def test_unknown_timestamp_names_are_kept(tmp_path):
    names = ["REQUEST_START", "CUSTOM_PREP_START", "CUSTOM_PREP_END", "MY_MARK", "REQUEST_END"]
    trace = read_triton_trace(write(tmp_path / "u.json", records(1, "m", names, 0)))
    assert set(trace.timestamps["name"].astype(str)) == set(names)
    assert "CUSTOM_PREP" in set(trace.profile.requests["stage"].astype(str))
    assert "MY_MARK" in set(A.stage_layout(trace.timestamps, A.request_tree(trace.headers))["name"])


def test_incomplete_requests_are_counted_not_dropped(tmp_path):
    cut = [n for n in HTTP if n not in ("REQUEST_END", "HTTP_SEND_END")]
    objs = records(1, "m", HTTP, 0) + records(2, "m", cut, 50_000)
    objs += [{"id": 3, "timestamps": [{"name": "REQUEST_START", "ns": 9}]}]  # no header at all
    trace = read_triton_trace(write(tmp_path / "inc.json", objs))
    bad = A.incomplete_requests(trace.timestamps, A.request_tree(trace.headers)).set_index("trace_id")
    assert sorted(bad.index) == [2, 3]
    assert bad.loc[2, "missing"] == "REQUEST_END, HTTP_SEND_END"
    assert bad.loc[3, "missing"].startswith("model header")
    stages = set(trace.profile.requests.query("trace_id == 2")["stage"].astype(str))
    assert {"QUEUE", "COMPUTE", "HTTP_RECV"} <= stages and "REQUEST" not in stages


# --- damaged input -------------------------------------------------------------------------

def _text(objs: list) -> str:
    return "[" + ",".join(json.dumps(o, separators=(",", ":")) for o in objs) + "]"


def test_truncated_file_is_salvaged_and_labelled_partial(tmp_path):
    text = _text(records(1, "m", HTTP, 0) + records(2, "m", HTTP, 10**6))
    cut = text[: text.rindex('"HTTP_SEND_START"') + 5]  # inside request 2's next-to-last object
    trace = read_triton_trace(write(tmp_path / "cut.json", [], cut))
    assert trace.partial and trace.profile.meta.extra["partial"]
    assert "truncated" in trace.issues[0] and "about 1 object" in trace.issues[0]
    assert trace.timestamps.query("trace_id == 2")["name"].nunique() == len(HTTP) - 2
    bad = A.incomplete_requests(trace.timestamps, A.request_tree(trace.headers))
    assert bad["trace_id"].tolist() == [2]


def test_file_missing_only_its_closing_bracket(tmp_path):
    text = _text(records(1, "m", HTTP, 0))[:-1] + ","
    trace = read_triton_trace(write(tmp_path / "open.json", [], text))
    assert trace.partial and "closing" in trace.issues[0]
    assert len(trace.timestamps) == len(HTTP)


@pytest.mark.parametrize("text, words", [
    ('[{"id":1,"timestamps":[{"name":"A","ns":1}]} {"id":2}]', "not valid JSON"),
    ("hello", "not valid JSON"),
    ('{"traceEvents": []}', "Chrome trace"),
    ('{"id": 1}', "JSON object"),
    ("42", "not a Triton trace"),
])
def test_malformed_files_raise_bad_input(tmp_path, text, words):
    with pytest.raises(BadInputError, match=words) as info:
        read_triton_trace(write(tmp_path / "bad.json", [], text))
    assert "\n" not in info.value.one_line()


def test_no_records_and_missing_files(tmp_path):
    with pytest.raises(NoDataError):
        read_triton_trace(write(tmp_path / "empty.json", [], ""))
    with pytest.raises(NoDataError):
        read_triton_trace(write(tmp_path / "list.json", [{"foo": 1}]))
    with pytest.raises(BadInputError, match="no Triton trace file"):
        read_triton_trace(tmp_path / "absent.json")
    with pytest.raises(BadInputError, match="no Triton trace file"):
        read_triton_trace(str(tmp_path / "nothing*.json"))


def test_tensor_bytes_that_are_not_utf8_do_not_reject_the_file(tmp_path):
    objs = records(1, "m", HTTP, 0)
    raw = _text(objs)[:-1].encode() + b',{"id":1,"activity":"TENSOR_QUEUE_INPUT","tensor":' \
        b'{"name":"x","data":"\xff\x01","shape":"2","dtype":"UINT8"}}]'
    path = tmp_path / "bytes.json"
    path.write_bytes(raw)
    trace = read_triton_trace(path)
    assert len(trace.tensors) == 1 and not trace.partial


# --- rendering -----------------------------------------------------------------------------

def test_seed_layout_of_the_timeline():
    # the seed parser's own example, in ns
    names = ["HTTP_RECV_START", "HTTP_RECV_END", "REQUEST_START", "COMPUTE_OUTPUT_START"]
    offsets = [0, 526015, 542254, 6312705]
    deltas = [0, 526015, 16239, 5770451]
    lines = ascii_timeline(names, offsets, deltas)
    col = len("COMPUTE_OUTPUT_START") + 1
    assert lines[0].split() == names
    assert lines[1].split() == ["0.0", "µs", "526.0", "µs", "542.3", "µs", "6,312.7", "µs"]
    assert lines[2].startswith("----+") and lines[2].endswith(">")
    assert [i for i, ch in enumerate(lines[2]) if ch == "+"] == [4 + col * i for i in range(4)]
    # each gap ends just before the column of the timestamp it leads to
    for i, gap in enumerate(["526.0 µs", "16.2 µs", "5,770.5 µs"], start=1):
        assert lines[3].index(gap) + len(gap) == col * i - 1


def test_timeline_wraps_into_blocks_that_repeat_the_last_name():
    names = [f"STAMP_{i:02d}_START" for i in range(12)]
    lines = ascii_timeline(names, list(range(0, 12000, 1000)), [0] + [1000] * 11, width=80)
    assert max(len(line) for line in lines) <= 80
    blocks = "\n".join(lines).split("\n\n")
    assert len(blocks) > 1
    assert blocks[1].split()[0] == blocks[0].split("\n")[0].split()[-1]


def test_gap_bars_have_a_fixed_width():
    bars = gap_bars([0, 10, 1000, 1000], [0, 10, 990, 0], width=20)
    assert {len(b) for b in bars} == {20}
    assert bars[2].endswith("█") and "█" not in bars[0]


def test_report_sections(fixture_trace, tmp_path):
    trace = read_triton_trace(write(tmp_path / "ens.json", _ensemble_objects()))
    analysis = A.analyze_requests(trace.profile.requests, trace.timestamps, trace.headers, trace.tensors)
    report = build_triton_report(analysis, trace_facts(["ens.json"], analysis, trace.partial), [])
    keys = [s.key for s in report.sections]
    assert keys[0] == "summary" and "incomplete" in keys and "requests" in keys
    assert {"timeline:ens:HTTP", "timeline:pre:in ens", "timeline:infer:in ens",
            "timeline:infer:HTTP"} <= set(keys)
    summary = report.section("summary").table
    assert summary["model"].tolist()[0] == "infer"
    assert any("child of ens" in n for n in report.section("summary").notes)
    rows = report.section("requests").table
    assert rows.query("trace_id == 6")["request"].iloc[0].strip().startswith("└")


def test_analysis_builds_the_request_tree_once(tmp_path, monkeypatch):
    """Regression: each analysis used to walk every request again (7 walks per parse)."""
    trace = read_triton_trace(write(tmp_path / "ens.json", _ensemble_objects()))
    requests, stamps = trace.profile.requests, trace.timestamps
    # each function given its own tree: the shared one must give the same tables
    expected = {"summary": A.stage_summary(requests, A.request_tree(trace.headers)),
                "layout": A.stage_layout(stamps, A.request_tree(trace.headers)),
                "per_request": A.per_request(requests, A.request_tree(trace.headers)),
                "incomplete": A.incomplete_requests(stamps, A.request_tree(trace.headers))}
    walks = []
    build = A.request_tree
    monkeypatch.setattr(A, "request_tree", lambda headers: walks.append(1) or build(headers))
    analysis = A.analyze_requests(trace.profile.requests, trace.timestamps, trace.headers,
                                  trace.tensors)
    assert len(walks) == 1
    for name, table in expected.items():
        pd.testing.assert_frame_equal(getattr(analysis, name), table)
    A.select_model(trace.headers, "ens")  # membership only: needs no tree
    assert len(walks) == 1


def test_chrome_trace_nests_per_thread(fixture_trace):
    doc = chrome_trace(fixture_trace.profile.requests)
    json.dumps(doc)
    slices = [e for e in doc["traceEvents"] if e["ph"] == "X"]
    assert len(slices) == len(fixture_trace.profile.requests)
    names = [e["args"]["name"] for e in doc["traceEvents"] if e["name"] == "process_name"]
    assert names == ["triton: resnet50"]
    by_thread = defaultdict(list)
    for e in slices:
        by_thread[(e["pid"], e["tid"])].append((e["ts"], e["ts"] + e["dur"]))
    for spans in by_thread.values():
        stack: list[float] = []
        for start, end in sorted(spans, key=lambda s: (s[0], -s[1])):
            while stack and stack[-1] <= start + 1e-6:
                stack.pop()
            assert not stack or end <= stack[-1] + 1e-6, "slices on one thread must nest"
            stack.append(end)


def test_written_trace_is_the_same_document_as_the_dict(fixture_trace, tmp_path):
    from gpuprof.render.triton_trace_json import write_chrome_trace

    requests = fixture_trace.profile.requests
    path = write_chrome_trace(tmp_path / "t.json", requests)
    doc = json.loads(path.read_text(encoding="utf-8"))
    assert doc == chrome_trace(requests)
    assert doc["otherData"]["clock"] == "CLOCK_MONOTONIC" and doc["displayTimeUnit"] == "ms"


def test_layouts_are_per_model_and_path(tmp_path):
    objs = _ensemble_objects() + records(9, "infer", GRPC, t0=200_000)
    objs += records(10, "infer", CORE, t0=300_000)  # in-process API: no frontend timestamps
    trace = read_triton_trace(write(tmp_path / "paths.json", objs))
    tree = A.request_tree(trace.headers)
    paths = A.request_paths(trace.timestamps, tree).set_index("trace_id")["path"]
    assert paths.to_dict() == {1: "HTTP", 5: "HTTP", 6: "in ens", 7: "in ens", 9: "gRPC",
                               10: "direct"}
    layout = A.stage_layout(trace.timestamps, tree)
    groups = list(dict.fromkeys(zip(layout["model"], layout["path"])))
    assert groups == [("infer", "HTTP"), ("infer", "gRPC"), ("infer", "direct"),
                      ("infer", "in ens"), ("ens", "HTTP"), ("pre", "in ens")]
    http = layout[(layout["model"] == "infer") & (layout["path"] == "HTTP")]
    assert http["name"].tolist() == HTTP and (http["requests"] == 1).all()


def test_chrome_trace_links_children_to_parents(tmp_path):
    trace = read_triton_trace(write(tmp_path / "ens.json", _ensemble_objects()))
    doc = chrome_trace(trace.profile.requests)
    pids = {e["args"]["name"]: e["pid"] for e in doc["traceEvents"] if e["name"] == "process_name"}
    starts = [e for e in doc["traceEvents"] if e["ph"] == "s"]
    ends = {e["id"]: e for e in doc["traceEvents"] if e["ph"] == "f"}
    assert len(starts) == len(ends) == 2
    assert {e["pid"] for e in starts} == {pids["triton: ens"]}
    assert {ends[e["id"]]["pid"] for e in starts} == {pids["triton: pre"], pids["triton: infer"]}
    # each arrow starts inside the parent's REQUEST slice
    parent = next(e for e in doc["traceEvents"] if e["ph"] == "X" and e["args"]["trace_id"] == 5
                  and e["name"] == "REQUEST")
    assert all(parent["ts"] <= e["ts"] <= parent["ts"] + parent["dur"] and e["tid"] == parent["tid"]
               for e in starts)


def test_directory_skips_files_that_are_not_traces(tmp_path):
    write(tmp_path / "trace.json", records(1, "m", HTTP, 0))
    write(tmp_path / "out.trace.json", [], '{"traceEvents": []}')
    trace = read_triton_trace(tmp_path)
    assert not trace.partial and "left out out.trace.json" in trace.issues[0]
    write(tmp_path / "broken.json", [], '[{"id": 1} {"id": 2}]')
    trace = read_triton_trace(tmp_path)
    assert trace.partial and any("broken.json, its records are lost" in i for i in trace.issues)
    (tmp_path / "trace.json").unlink()
    with pytest.raises(BadInputError, match="none of the 2 files"):
        read_triton_trace(tmp_path)
