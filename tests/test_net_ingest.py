"""The capture parser (gpuprof's layout and the seed's), per-connection traffic and the
`gpuprof net FILE` report, recomputed with plain Python. No root needed.

gpuprof-layout lines are printed here with the printf format taken from the shipped program
itself, so the parser is tested against what bpftrace is told to print; real captures are
tested in test_net_capture.py.
"""

from __future__ import annotations

import json
import random
import re
from collections import defaultdict
from pathlib import Path

import pandas as pd
import pytest

from gpuprof import bpf
from gpuprof.analyze.net import connection_traffic, filter_events
from gpuprof.capture.net import scan_capture
from gpuprof.cli.main import main
from gpuprof.errors import BadInputError
from gpuprof.ingest.net_capture import read_net_capture
from gpuprof.model.tables import SCHEMAS

from .conftest import fixtures_root

# the seed projects sit beside the shared fixtures (../shared/seeds)
SEED = fixtures_root().parent / "seeds" / "000_2b5f9f57c6140eb9.txt"


def seed_example_block() -> list[str]:
    """The seed README's bpftrace output example (the code block holding SEND/RECV)."""
    if not SEED.exists():
        pytest.skip(f"seed file {SEED} not found (set GPUPROF_FIXTURES)")
    blocks = re.findall(r"```\n(.*?)```", SEED.read_text(encoding="utf-8"), flags=re.S)
    block = next((b for b in blocks if "SEND/RECV" in b), None)
    assert block is not None, "the seed's bpftrace example block was not found"
    return block.splitlines()


def program_format() -> str:
    """The event printf format of the shipped tracepoint program, as Python %-format."""
    text = bpf.program_path("tracepoint").read_text()
    formats = re.findall(r'printf\("(%-8s %-7d[^"]*)\\n"', text)
    assert formats and len(set(formats)) == 1, formats
    return formats[0].replace("%-9llu", "%-9d").replace("%-19llu", "%-19d")


def header_lines(program="tracepoint", start=1_000_000_000, pids=(0, 0, 0, 0),
                 ports=(8000, 0, 0, 0, 0, 0, 0, 0)) -> list[str]:
    return ["Attaching 3 probes...",
            f"# gpuprof-net program={program} layout=1 start_mono_ns={start} start_wall=2026-12-06T01:02:03",
            "# filter pids=" + ",".join(map(str, pids)),
            "# filter ports=" + ",".join(map(str, ports)),
            "TIME     PID     COMM             SADDR:SPORT           DADDR:DPORT           "
            "TIME(ms)  SEND/RECV BYTES     MONO_NS             TID"]


def event_line(rec: dict) -> str:
    return program_format() % (
        "01:02:03", rec["pid"], rec["comm"], rec["laddr"], rec["lport"], rec["raddr"], rec["rport"],
        (rec["t"] - 1_000_000_000) // 1_000_000, rec["dir"].upper(), rec["bytes"], rec["t"], rec["tid"])


def random_records(n=400, seed=7) -> list[dict]:
    rng = random.Random(seed)
    conns = [(101, "python", "127.0.0.1", 40001, "127.0.0.1", 8000),
             (202, "tritonserver", "127.0.0.1", 8000, "127.0.0.1", 40001),
             (303, "Web Content", "::1", 51000, "::1", 8000),       # a comm with a space, IPv6
             (101, "python", "127.0.0.1", 40002, "127.0.0.1", 8000)]
    out = []
    for i in range(n):
        pid, comm, la, lp, ra, rp = rng.choice(conns)
        out.append(dict(pid=pid, comm=comm, laddr=la, lport=lp, raddr=ra, rport=rp,
                        dir=rng.choice(["send", "recv"]), bytes=rng.randint(1, 2_000_000),
                        t=1_000_000_000 + rng.randint(0, 5_000_000_000), tid=pid + i % 3))
    return out  # times are not sorted: bpftrace's per-CPU buffers interleave like this


def write_capture(path: Path, records: list[dict], extra: list[str] = (), lost=(5, 7)) -> Path:
    lines = header_lines()
    for i, rec in enumerate(records):
        lines.append(event_line(rec))
        if i == len(records) // 3 and lost:
            lines.append(f"Lost {lost[0]} events")
    lines += list(extra)
    if len(lost) > 1:
        lines += ["", f"Lost {lost[1]} events", "", ""]
    path.write_text("\n".join(lines) + "\n")
    return path


# -- gpuprof's layout --------------------------------------------------------------------------

def test_gpuprof_layout_round_trip(tmp_path):
    records = random_records()
    events, facts = read_net_capture(write_capture(tmp_path / "net.txt", records))
    assert list(events.columns) == list(SCHEMAS["network_events"])
    assert (facts.layout, facts.program, facts.start_monotonic_ns) == ("gpuprof", "tracepoint", 1_000_000_000)
    assert facts.clock.startswith("CLOCK_MONOTONIC")
    assert (facts.ports, facts.pids) == ([8000], [])
    assert (facts.lost_events, facts.events, facts.truncated_lines, facts.unparsed_lines) == (12, len(records), 0, 0)
    expected = sorted(((r["t"], r["pid"], r["tid"], r["comm"], r["laddr"], r["lport"], r["raddr"],
                        r["rport"], r["dir"], r["bytes"], r["t"], 1) for r in records),
                      key=lambda row: row[0])  # a single call is a run of one: last_ns, calls
    got = [tuple(row) for row in events.astype(object).itertuples(index=False)]
    assert got == expected  # sorted by time, every field, comm with its space, IPv6 addresses


def test_truncated_last_line_is_dropped_and_counted(tmp_path):
    records = sorted(random_records(20), key=lambda r: r["t"])
    path = tmp_path / "killed.txt"
    path.write_text("\n".join(header_lines() + [event_line(r) for r in records]) + "\n")
    text = path.read_text()
    cut = text.rstrip("\n").rfind(" ", 0, len(text) - 8)  # inside the last line's MONO_NS/TID
    path.write_text(text[:cut + 4])
    events, facts = read_net_capture(path)
    assert facts.truncated_lines == 1 and facts.partial
    assert len(events) == len(records) - 1
    assert events["time_ns"].tolist() == [r["t"] for r in records[:-1]]


def test_unknown_lines_are_counted_not_fatal(tmp_path):
    records = random_records(10)
    path = write_capture(tmp_path / "net.txt", records, extra=["01:02:03 this is not an event",
                                                               "random words here"], lost=())
    events, facts = read_net_capture(path)
    assert len(events) == 10 and facts.unparsed_lines == 2
    assert facts.unparsed_example in ("01:02:03 this is not an event", "random words here")


def test_header_only_capture_is_an_empty_table(tmp_path):
    path = tmp_path / "quiet.txt"
    path.write_text("\n".join(header_lines()) + "\n")
    events, facts = read_net_capture(path)
    assert events.empty and list(events.columns) == list(SCHEMAS["network_events"])
    assert facts.layout == "gpuprof" and facts.events == 0


@pytest.mark.parametrize("content", [b"", b"hello\nworld\n", bytes(range(256)) * 40,
                                     b'{"json": true}\n'])
def test_garbage_is_one_clear_error(tmp_path, content):
    path = tmp_path / "garbage.txt"
    path.write_bytes(content)
    with pytest.raises(BadInputError, match="not a bpftrace network capture"):
        read_net_capture(path)


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(BadInputError, match="not found"):
        read_net_capture(tmp_path / "nope.txt")
    with pytest.raises(BadInputError, match="is a directory"):
        read_net_capture(tmp_path)


# -- the seed's layout -------------------------------------------------------------------------

def test_seed_example_block(tmp_path):
    block = seed_example_block()
    path = tmp_path / "seed.txt"
    path.write_text("\n".join(block) + "\n")
    events, facts = read_net_capture(path)
    # independent reading: every line that starts with a time, split on whitespace
    expected = [line.split() for line in block if re.match(r"\d\d:\d\d:\d\d ", line)]
    assert len(expected) >= 3 and len(events) == len(expected)
    assert facts.layout == "seed" and facts.unparsed_lines == 0
    assert "no monotonic time" in facts.clock and facts.program == "unknown"
    for (_, pid, comm, src, dst, _ms, direction), row in zip(expected, events.itertuples(), strict=True):
        assert (row.pid, row.comm) == (int(pid), comm)
        assert f"{row.local_addr}:{row.local_port}" == src and f"{row.remote_addr}:{row.remote_port}" == dst
        assert row.direction == direction.strip("*").lower()
        assert (row.time_ns, row.bytes, row.tid) == (-1, -1, -1)
    traffic = connection_traffic(events)
    assert traffic["bytes_sent"].isna().all() and traffic["first_ns"].isna().all()


# -- per-connection traffic and the report -----------------------------------------------------

def plain_traffic(records: list[dict]) -> dict[tuple, dict]:
    out: dict[tuple, dict] = defaultdict(lambda: dict(sends=0, recvs=0, sent=0, received=0,
                                                      first=None, last=None))
    for r in records:
        row = out[(r["pid"], r["comm"], r["laddr"], r["lport"], r["raddr"], r["rport"])]
        row["sends" if r["dir"] == "send" else "recvs"] += 1
        row["sent" if r["dir"] == "send" else "received"] += r["bytes"]
        row["first"] = r["t"] if row["first"] is None else min(row["first"], r["t"])
        row["last"] = r["t"] if row["last"] is None else max(row["last"], r["t"])
    return out


def test_connection_traffic_matches_plain_python(tmp_path):
    records = random_records()
    events, _ = read_net_capture(write_capture(tmp_path / "net.txt", records))
    traffic = connection_traffic(events)
    expected = plain_traffic(records)
    assert len(traffic) == len(expected)
    for row in traffic.itertuples():
        want = expected[(row.pid, row.comm, row.local_addr, row.local_port, row.remote_addr, row.remote_port)]
        assert (row.sends, row.recvs, row.bytes_sent, row.bytes_received, row.first_ns, row.last_ns) == (
            want["sends"], want["recvs"], want["sent"], want["received"], want["first"], want["last"])
    assert traffic["first_ns"].is_monotonic_increasing  # connections in order of appearance


def test_filter_events_matches_the_kernel_rule(tmp_path):
    records = random_records()
    events, _ = read_net_capture(write_capture(tmp_path / "net.txt", records))
    kept = filter_events(events, ports=(40002,), pids=(101,))
    want = [r for r in records if 40002 in (r["lport"], r["rport"]) and r["pid"] == 101]
    assert len(kept) == len(want) and sum(r["bytes"] for r in want) == kept["bytes"].sum()


def test_cli_report_csv_and_json_match_plain_python(tmp_path, capsys):
    records = random_records()
    path = write_capture(tmp_path / "net.txt", records)
    assert main(["net", str(path), "-o", str(tmp_path / "r.csv")]) == 0
    assert main(["net", str(path), "-o", str(tmp_path / "r.json")]) == 0
    csv = pd.read_csv(tmp_path / "r.csv")
    report = json.loads((tmp_path / "r.json").read_text())
    expected = plain_traffic(records)
    assert len(csv) == len(expected)
    by_conn = {(r["pid"], r["laddr"], r["lport"], r["raddr"], r["rport"]): v for r in records
               for k, v in [((r["pid"], r["comm"], r["laddr"], r["lport"], r["raddr"], r["rport"]),
                             expected[(r["pid"], r["comm"], r["laddr"], r["lport"], r["raddr"], r["rport"])])]}
    for row in csv.itertuples():
        src, dst = row.connection.split(" -> ")
        pid = int(row.process.rsplit("(", 1)[1].rstrip(")"))
        la, lp = src.rsplit(":", 1)
        ra, rp = dst.rsplit(":", 1)
        want = by_conn[(pid, la, int(lp), ra, int(rp))]
        assert (row.sends, row.recvs, row.bytes_sent, row.bytes_received) == (
            want["sends"], want["recvs"], want["sent"], want["received"])
        assert row.first_ms == pytest.approx((want["first"] - 1_000_000_000) / 1e6)
        assert row.last_ms == pytest.approx((want["last"] - 1_000_000_000) / 1e6)
    assert report["schema_version"] == 1 and report["kind"] == "net"
    facts = report["facts"]
    assert facts["lost_events"] == "12" and facts["events"] == f"{len(records):,}"
    assert "PARTIAL" in facts["status"]
    assert any("lost 12 events" in note for s in report["sections"] for note in s["notes"])


def test_cli_report_filters_by_port(tmp_path, capsys):
    records = random_records()
    path = write_capture(tmp_path / "net.txt", records)
    assert main(["net", str(path), "--port", "51000"]) == 0
    out = capsys.readouterr().out
    n = sum(1 for r in records if 51000 in (r["lport"], r["rport"]))
    assert f"{n:,} of {len(records):,} in the file" in out
    assert "Web Content (303)" in out and "tritonserver" not in out


@pytest.mark.parametrize("argv, code, message", [
    (["net", "/no/such/capture.txt"], 2, "not found"),
    (["net", "{garbage}"], 2, "not a bpftrace network capture"),
    (["net", "{capture}", "--duration", "3"], 2, "apply to a live capture"),
    (["net", "--port", "8000", "-o", "{tmp}/report.md"], 2, "names the capture"),
    (["net", "--port", "8000", "--format", "json"], 2, "apply to a saved capture"),
])
def test_cli_bad_input_is_one_error_line(tmp_path, capsys, argv, code, message):
    garbage = tmp_path / "garbage.txt"
    garbage.write_text("nothing to see\n")
    capture = write_capture(tmp_path / "net.txt", random_records(5))
    argv = [a.format(garbage=garbage, capture=capture, tmp=tmp_path) for a in argv]
    assert main(argv) == code
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("Error: ") and message in err[0], err


def test_runs_layout_gives_one_row_per_run_with_its_calls_and_bytes(tmp_path):
    """The runs program's lines (gpuprof/bpf/net_runs.bt's printf): first/last time, calls and
    bytes per run; COMM, last, may hold spaces."""
    path = tmp_path / "runs.txt"
    path.write_text("\n".join([
        "Attaching 5 probes...",
        "# gpuprof-net program=tracepoint layout=runs start_mono_ns=5 start_wall=2026-12-06T03:03:01",
        "# filter pids=0,0,0,0", "# filter ports=8000,0,0,0,0,0,0,0",
        "RUN RECV 20 21 127.0.0.1:8000 127.0.0.1:40001 300 900 28 110989 tritonserver",
        "RUN SEND 7 7 ::ffff:127.0.0.1:40002 ::ffff:127.0.0.1:8001 200 200 1 5 grpc client",
        "RUN SEND 7 7 40001 8000 100 100 1 110989 py client",   # before addresses were printed
        "RUN RECV 7 7 host:port 8000 1 1 1 1 x",
        "RUN BOGUS 1 2 3", ""]))
    events, facts = read_net_capture(path)
    assert (facts.layout, facts.events, facts.unparsed_lines) == ("gpuprof", 30, 2)
    rows = events[["time_ns", "pid", "comm", "direction", "bytes", "last_ns", "calls",
                   "local_addr", "local_port", "remote_addr", "remote_port"]]
    assert [tuple(r) for r in rows.astype(object).itertuples(index=False)] == [
        (100, 7, "py client", "send", 110989, 100, 1, "", 40001, "", 8000),
        (200, 7, "grpc client", "send", 5, 200, 1, "::ffff:127.0.0.1", 40002,
         "::ffff:127.0.0.1", 8001),
        (300, 20, "tritonserver", "recv", 110989, 900, 28, "127.0.0.1", 8000, "127.0.0.1",
         40001)]


def test_run_maps_layout_gives_one_row_per_run_once(tmp_path):
    """The runs program's map entries (net_runs.bt's print(@fin0/@fin1)): a run printed twice
    (tick and stop marker) is one row, the sentinel no row, a COMM may hold ', ', and the
    largest @lost_runs total marks the capture partial."""
    path = tmp_path / "runmaps.txt"
    path.write_text("\n".join([
        "Attaching 7 probes...",
        "# gpuprof-net program=tracepoint layout=runmaps start_mono_ns=5 start_wall=2026-12-06T03:03:01",
        "# filter pids=0,0,0,0", "# filter ports=8000,0,0,0,0,0,0,0", "# run_slots=60000",
        "TIME RUN SEND/RECV PID TID SADDR:SPORT DADDR:DPORT MONO_NS LAST_NS CALLS BYTES COMM",
        "@lost_runs: 0", "",
        "@fin0[-1313872, 300]: (2, 20, 21, 8000, 40001, 300, 900, 28, 110989, tritonserver, "
        "127.0.0.1, 127.0.0.1)",
        "@fin0[0, 0]: (9, 0, 0, 0, 0, 0, 0, 0, 0, swapper/0, 0.0.0.0, 0.0.0.0)",
        "@fin0[-1313888, 200]: (1, 7, 8, 40002, 8001, 200, 250, 2, 5, grpc, client, "
        "::ffff:127.0.0.1, ::ffff:127.0.0.1)",
        "@lost_runs: 3",
        "@fin1[-1313872, 300]: (2, 20, 21, 8000, 40001, 300, 900, 28, 110989, tritonserver, "
        "127.0.0.1, 127.0.0.1)",
        "@fin1[-1313872, 100]: (5, 20, 21, 8000, 40001, 100, 100, 1, 1, x, 127.0.0.1, 127.0.0.1)",
        "@fin1[-1313872, 100]: (1, 20)",
        "@lost_runs: 2", "# sync 1073741999 1000", ""]))
    events, facts = read_net_capture(path)
    assert (facts.layout, facts.events, facts.unparsed_lines, facts.lost_runs) == ("gpuprof", 30, 2, 3)
    assert facts.partial
    rows = events[["time_ns", "pid", "tid", "comm", "direction", "bytes", "last_ns", "calls",
                   "local_addr", "local_port", "remote_addr", "remote_port"]]
    assert [tuple(r) for r in rows.astype(object).itertuples(index=False)] == [
        (200, 7, 8, "grpc, client", "send", 5, 250, 2, "::ffff:127.0.0.1", 40002,
         "::ffff:127.0.0.1", 8001),
        (300, 20, 21, "tritonserver", "recv", 110989, 900, 28, "127.0.0.1", 8000, "127.0.0.1",
         40001)]
    counts = scan_capture(path)   # what the capture reports: entries as written, the total
    assert (counts.events, counts.lost_runs) == (5, 3)


def test_report_marks_lost_runs(tmp_path, capsys):
    path = tmp_path / "runmaps.txt"
    path.write_text("# gpuprof-net program=tracepoint layout=runmaps start_mono_ns=5 start_wall=x\n"
                    "@fin0[-1, 300]: (2, 20, 21, 8000, 40001, 300, 900, 28, 11, t, 1.2.3.4, 1.2.3.4)\n"
                    "@lost_runs: 4\n")
    assert main(["net", str(path)]) == 0
    out = capsys.readouterr().out
    assert "Lost runs: 4" in out and "no room for 4 runs" in out and "PARTIAL" in out
