"""Benchmark: what writing a trace adds to the command a user types, per format.

For each export, in fresh processes, in one run: `gpuprof nsys EXPORT -o report.md` (the
baseline), the same with `--chrome-trace t.pftrace` and `t.pftrace.gz`, and (unless --no-json) with
`--chrome-trace t.json`. Wall time and peak RSS (the child's own, from wait4) and the trace's
size. With --check, the protobuf trace is read back with Perfetto's classes and its slice
count compared with the export's rows.

    python tools/bench/bench_trace.py /tmp/r1m.sqlite /tmp/r5m.sqlite [--no-json] [--check]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from fresh import run_fresh


def timed(argv: list[str]) -> tuple[float, int]:
    """Wall seconds and the child's peak RSS (bytes) of one fresh process (tools/bench/fresh.py)."""
    run = run_fresh(argv)
    return run.seconds, run.peak_bytes


BATCH_BYTES = 64 << 20


def packet_batches(path: Path):
    """The trace's packets as byte runs of whole ``Trace.packet`` entries, about 64 MiB each
    (a 5M-kernel trace parsed at once would hold millions of Python objects)."""
    data = memoryview(path.read_bytes())
    at = begin = 0
    while at < len(data):
        assert data[at] == 0x0A, f"not a Trace.packet at byte {at}"
        length, shift, at = 0, 0, at + 1
        while True:  # the entry's length, a varint
            byte = data[at]
            length |= (byte & 0x7F) << shift
            at, shift = at + 1, shift + 7
            if byte < 0x80:
                break
        at += length
        if at - begin >= BATCH_BYTES or at >= len(data):
            yield data[begin:at]
            begin = at


def slice_count(path: Path) -> int:
    """Begin events read back with Perfetto's own classes, batch by batch."""
    from perfetto.protos.perfetto.trace.perfetto_trace_pb2 import Trace, TrackEvent

    begin = TrackEvent.TYPE_SLICE_BEGIN
    return sum(sum(1 for p in Trace.FromString(bytes(batch)).packet
                   if p.HasField("track_event") and p.track_event.type == begin)
               for batch in packet_batches(path))


def export_rows(path: Path) -> int:
    import sqlite3

    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    total = 0
    for table, where in (("CUPTI_ACTIVITY_KIND_KERNEL", ""), ("CUPTI_ACTIVITY_KIND_MEMCPY", ""),
                         ("CUPTI_ACTIVITY_KIND_MEMSET", ""), ("CUPTI_ACTIVITY_KIND_RUNTIME", ""),
                         ("NVTX_EVENTS", " WHERE eventType IN (34, 59, 60) AND "
                                         "(end IS NULL OR end >= start)")):
        if table in tables:
            total += db.execute(f"SELECT count(*) FROM {table}{where}").fetchone()[0]
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("exports", nargs="+", type=Path)
    parser.add_argument("--no-json", action="store_true")
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args()
    gpuprof = [sys.executable, "-m", "gpuprof", "nsys"]
    print("| export | command | wall (s) | peak RSS (GiB) | trace (MiB) |")
    print("|---|---|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as tmp:
        for export in args.exports:
            report = str(Path(tmp) / "report.md")
            runs = [("baseline (no trace)", [])]
            runs.append(("--chrome-trace t.pftrace", ["--chrome-trace", f"{tmp}/t.pftrace"]))
            runs.append(("--chrome-trace t.pftrace.gz",
                         ["--chrome-trace", f"{tmp}/t.pftrace.gz"]))
            if not args.no_json:
                runs.append(("--chrome-trace t.json", ["--chrome-trace", f"{tmp}/t.json"]))
            for label, extra in runs:
                seconds, peak = timed(gpuprof + [str(export), "-o", report] + extra)
                size = Path(extra[1]).stat().st_size / 2**20 if extra else 0
                print(f"| {export.name} | {label} | {seconds:.1f} | {peak / 2**30:.2f} | "
                      f"{size:,.0f} |", flush=True)
            if args.check:
                found, expected = slice_count(Path(tmp) / "t.pftrace"), export_rows(export)
                print(f"read back: {found:,} slices; the export has {expected:,} rows "
                      f"({'equal' if found == expected else 'DIFFERENT'})", flush=True)


if __name__ == "__main__":
    main()
