"""Benchmark: many exports at once, `gpuprof nsys DIR` on a Dask LocalCluster (1 and 2 workers)
against a serial loop, each timed as a user runs it, in a fresh process.

Approaches, per set of exports:
- serial loop of commands: `gpuprof nsys EXPORT -o report.json` once per export, one after
  the other (what a user does without the fleet command; each pays Python's imports);
- serial, one process: the same partials read one export after another in one process, no
  Dask (what the fleet command costs without its engine);
- `gpuprof nsys DIR --workers 1` and `--workers 2` (LocalCluster, one thread per worker).

Wall time of the whole command and peak resident memory of its process tree (the command and
its Dask workers, summed, sampled every 50 ms). The two Dask runs' combined kernel tables are
compared, so both compute the same thing.

    python tools/bench_fleet.py                                  # the shared real exports
    python tools/bench_fleet.py --scaled-kernels 1001308 --copies 8   # + 8 copies of a 1M export
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent / "bench"))
from fresh import run_fresh  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO.parent / "shared/fixtures/nsys"
SOURCE = FIXTURES / "Dhruv23__DNNPartitioning__resnet50_profile_20251023_124711.sqlite"
GPUPROF = [sys.executable, "-m", "gpuprof", "nsys"]
SAMPLE_S = 0.05

ONE_PROCESS = """
import sys
from pathlib import Path
from gpuprof.pipeline.fleet import export_names, find_exports, read_partial
from gpuprof.render.fleet import fleet_report
from gpuprof.render.report import write_report
paths = find_exports([sys.argv[1]])
partials = [read_partial(str(p), n) for p, n in zip(paths, export_names(paths))]
write_report(fleet_report(partials, "serial, one process"), sys.argv[2])
"""


def timed(argv: list[str]) -> tuple[float, float, int, int]:
    """Wall seconds, CPU seconds and peak RSS (bytes) of the process tree, and the exit status
    of one command. CPU time (user + system of the command and every worker it waited for)
    says what the work costs when other work shares the cores and wall time cannot. The peak
    is the tree's sum (the command and its Dask workers), sampled: wait4's own peak is one
    process's."""
    peak = 0

    def sample(pid: int) -> None:
        nonlocal peak
        with contextlib.suppress(psutil.Error):
            peak = max(peak, _tree_rss(psutil.Process(pid)))

    run = run_fresh(argv, cwd=REPO, env=dict(os.environ, PYTHONPATH=str(REPO)), check=False,
                    while_running=sample, poll_s=SAMPLE_S)
    return run.seconds, run.cpu_seconds, peak, run.returncode


def _tree_rss(process: psutil.Process) -> int:
    total = 0
    try:
        for member in [process, *process.children(recursive=True)]:
            try:
                total += member.memory_info().rss
            except psutil.Error:
                pass
    except psutil.Error:
        pass
    return total


def exports_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix == ".sqlite")


def measure_set(label: str, folder: Path, work: Path) -> list[dict]:
    exports = exports_in(folder)
    rows = []
    wall, cpu, peak, failed = 0.0, 0.0, 0, 0
    for export in exports:
        seconds, used, rss, code = timed(GPUPROF + [str(export), "-o", str(work / "one.json")])
        wall, cpu, peak, failed = wall + seconds, cpu + used, max(peak, rss), failed + (code != 0)
    rows.append(_row(label, len(exports), "serial loop of `gpuprof nsys EXPORT`", wall, cpu,
                     peak, f"{failed} exit non-zero (no CUDA data)" if failed else ""))
    seconds, used, rss, code = timed([sys.executable, "-c", ONE_PROCESS, str(folder),
                                      str(work / "serial.json")])
    rows.append(_row(label, len(exports), "serial, one process, no Dask", seconds, used, rss,
                     _status(code)))
    for workers in (1, 2):
        out = work / f"dask{workers}.json"
        seconds, used, rss, code = timed(GPUPROF + [str(folder), "--workers", str(workers),
                                                    "-o", str(out)])
        rows.append(_row(label, len(exports), f"`gpuprof nsys DIR --workers {workers}` (Dask)",
                         seconds, used, rss, _status(code)))
    same = _kernels(work / "dask1.json") == _kernels(work / "dask2.json") == \
        _kernels(work / "serial.json")
    if not same:
        raise SystemExit(f"{label}: the combined kernel tables differ between runs")
    return rows


def _status(code: int) -> str:
    return "" if code == 0 else f"exit {code}"


def _kernels(report: Path) -> list:
    doc = json.loads(report.read_text())
    return next((s["rows"] for s in doc["sections"] if s["key"] == "kernels"), [])


def _row(label, count, approach, seconds, cpu, peak, note) -> dict:
    return {"set": label, "exports": count, "approach": approach, "seconds": seconds,
            "cpu_seconds": cpu, "peak_mib": peak / 2**20, "note": note}


def scaled_set(kernels: int, copies: int, work: Path) -> Path:
    """``copies`` links, each its own name, to one export of about ``kernels`` kernels."""
    export = work / f"resnet_{kernels // 1000}k.sqlite"
    if not export.exists():
        subprocess.run([sys.executable, str(REPO / "tools/bench/scale_export.py"), str(SOURCE),
                        str(export), "--kernels", str(kernels)], check=True)
    folder = work / f"{copies}x{kernels // 1000}k"
    folder.mkdir(exist_ok=True)
    for index in range(copies):
        link = folder / f"rank{index}.sqlite"
        if not link.exists():
            link.symlink_to(export)
    return folder


def markdown(rows: list[dict]) -> str:
    lines = ["| exports | approach | wall (s) | CPU (s) | peak RSS, tree (MiB) | wall vs serial "
             "loop | note |", "|---|---|---:|---:|---:|---:|---|"]
    base = {}
    for row in rows:
        base.setdefault(row["set"], row["seconds"])
        speedup = base[row["set"]] / row["seconds"]
        lines.append(f"| {row['set']} ({row['exports']}) | {row['approach']} | "
                     f"{row['seconds']:.1f} | {row['cpu_seconds']:.1f} | {row['peak_mib']:,.0f} | {speedup:.2f}x | "
                     f"{row['note']} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--exports", type=Path, default=FIXTURES,
                        help="folder of real exports (default: the shared fixtures)")
    parser.add_argument("--scaled-kernels", type=int, default=0,
                        help="also a set of copies of the ResNet export scaled to this many kernels")
    parser.add_argument("--copies", type=int, default=8)
    parser.add_argument("--workdir", type=Path, help="keeps the scaled export between runs")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        work = args.workdir or Path(scratch)
        work.mkdir(parents=True, exist_ok=True)
        rows = measure_set("real exports", args.exports, work)
        if args.scaled_kernels:
            folder = scaled_set(args.scaled_kernels, args.copies, work)
            rows += measure_set(f"{args.copies} x {args.scaled_kernels:,}-kernel export",
                                folder, work)
    print(f"cores: {os.cpu_count()}, memory: {psutil.virtual_memory().total / 2**30:.1f} GiB, "
          f"load average at the end: {os.getloadavg()[0]:.1f}")
    print(markdown(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
