"""Benchmark what users run: `gpuprof nsys` on a (scaled) export, each command in a fresh
process, wall time and the child's own peak RSS, beside the pandas baseline and the bare
SQLite scan of tools/bench/bench_nsys.py, in one run (ratios only hold within one run).

    python tools/bench/bench_nsys_cli.py /tmp/bench/r1m.sqlite /tmp/bench/r5m.sqlite [--repeat 2]

Measured per export: `gpuprof nsys EXPORT` as typed (the terminal report), `-o r.json`,
`--out-dir`, `--save run.gpuprof`,
the saved run's report, `gpuprof.load(p).report()`, pandas and the bare scan; then the
default report once more with GPUPROF_SECTION_TIMES=1 for the seconds of each section.
The JSON reports of the export, the --save run and the saved run must be identical.
``--baseline REPO`` also times the terminal report, -o r.json, --save and the saved run's report of
another checkout (e.g. /work/main, before a change), in the same rounds.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import textwrap
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_nsys  # noqa: E402  (the pandas baseline and bare scan, same code)
from fresh import run_fresh  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
GPUPROF = [sys.executable, "-m", "gpuprof", "nsys"]
API_REPORT = "import sys, gpuprof; gpuprof.load(sys.argv[1]).report()"


def commands(export: Path, work: Path) -> dict[str, tuple[list[str], Path]]:
    """name -> (command line, what it reads); the saved run comes from the --save command."""
    saved = work / "run.gpuprof"
    script = lambda code: [sys.executable, "-c", textwrap.dedent(code)]  # noqa: E731
    return {
        "bare SQLite scan": (script(bench_nsys.PRELUDE + bench_nsys.BARE_SCAN
                                    + bench_nsys.EPILOGUE) + [str(export)], export),
        "pandas per-layer baseline": (script(bench_nsys.PRELUDE + bench_nsys.PANDAS
                                             + bench_nsys.EPILOGUE) + [str(export)], export),
        # the command as typed: the terminal report (its output captured by run_fresh)
        "gpuprof nsys EXPORT": (GPUPROF + [str(export)], export),
        "gpuprof nsys EXPORT -o r.json": (GPUPROF + [str(export), "-o", str(work / "r.json")],
                                          export),
        "gpuprof nsys EXPORT --out-dir D": (GPUPROF + [str(export), "--out-dir",
                                                       str(work / "outdir")], export),
        "gpuprof nsys EXPORT --save run.gpuprof": (
            GPUPROF + [str(export), "--save", str(saved), "-o", str(work / "r_save.json")], export),
        "gpuprof nsys run.gpuprof -o r.json": (GPUPROF + [str(saved), "-o",
                                                          str(work / "r_saved.json")], saved),
        "gpuprof.load(export).report()": ([sys.executable, "-c", API_REPORT, str(export)], export),
        "gpuprof.load(run.gpuprof).report()": ([sys.executable, "-c", API_REPORT, str(saved)],
                                               saved),
    }


def measure(argv: list[str], env: dict | None = None, cwd: Path = REPO) -> dict:
    """Wall time and the child's own peak RSS, through tools/bench/fresh.py. This parent
    stays small, so what a child inherits at exec is a floor far below the figures measured.
    cwd is the checkout measured: `python -m` puts it first on sys.path."""
    run = run_fresh(argv, cwd=cwd, env=env, check=False)
    if run.returncode != 0:
        raise RuntimeError(f"{argv} failed:\n{run.stderr[-2000:]}")
    return {"seconds": run.seconds, "peak_bytes": run.peak_bytes, "stderr": run.stderr,
            "stdout": run.stdout}


def section_times(export: Path, work: Path) -> dict[str, float]:
    env = dict(os.environ, GPUPROF_SECTION_TIMES="1", PYTHONPATH=str(REPO))
    done = measure(GPUPROF + [str(export), "-o", str(work / "r_timed.json")], env)
    times: dict[str, float] = {}
    for line in done["stderr"].splitlines():
        if line.startswith("gpuprof section "):
            name, seconds = line.removeprefix("gpuprof section ").rsplit(": ", 1)
            times[name] = times.get(name, 0.0) + float(seconds.removesuffix(" s"))
    return times


BASELINE_COMMANDS = ("gpuprof nsys EXPORT", "gpuprof nsys EXPORT -o r.json",
                     "gpuprof nsys EXPORT --save run.gpuprof", "gpuprof nsys run.gpuprof -o r.json")


def bench(export: Path, repeat: int,
          baseline: Path | None = None) -> tuple[list[dict], dict[str, float]]:
    work = Path(tempfile.mkdtemp(prefix="gpuprof-bench-", dir=export.parent))
    env = dict(os.environ, PYTHONPATH=str(REPO))
    todo = [(name, argv, env, REPO) for name, (argv, _) in commands(export, work).items()]
    if baseline is not None:  # the other checkout's commands, on files of its own
        (work / "baseline").mkdir()
        base_env = dict(os.environ, PYTHONPATH=str(baseline))
        base = commands(export, work / "baseline")
        todo += [(f"baseline: {name}", base[name][0], base_env, baseline)
                 for name in BASELINE_COMMANDS]
    runs: dict[str, list[dict]] = {}
    try:
        for _ in range(repeat):  # rounds interleave the commands: load changes hit them all
            for name, argv, env, cwd in todo:
                out = measure(argv, env, cwd)
                runs.setdefault(name, []).append(out)
                print(f"{export.name:>12} {name:40s} {out['seconds']:7.2f} s "
                      f"{out['peak_bytes'] / 2**20:8.0f} MiB", flush=True)
        _check_same_reports(work)
        if baseline is not None:
            _check_same_as_baseline(work)
        sizes = {"saved run MiB": (work / "run.gpuprof").stat().st_size / 2**20}
        times = section_times(export, work) | sizes
    finally:
        shutil.rmtree(work, ignore_errors=True)
    rows = [{"export": export.name, "command": name, **min(outs, key=lambda o: o["seconds"])}
            for name, outs in runs.items()]
    return rows, times


def _check_same_reports(work: Path) -> None:
    """The export's report, the --save run's and the saved run's must say the same."""
    reports = [json.loads((work / f).read_text()) for f in ("r.json", "r_save.json",
                                                             "r_saved.json")]
    for report in reports:
        report.pop("title", None)
    if not reports[0] == reports[1] == reports[2]:
        raise SystemExit("the saved run's report differs from the export's")
    print("reports of the export and of its saved run: identical", flush=True)


def _check_same_as_baseline(work: Path) -> None:
    """The baseline checkout's report of the export must say what this one's says."""
    mine, theirs = (json.loads(path.read_text()) for path in (work / "r.json",
                                                              work / "baseline/r.json"))
    # reported, not fatal: a baseline may predate a change of the report's format
    same = "identical to" if mine == theirs else "DIFFERENT from"
    print(f"report {same} the baseline checkout's", flush=True)


def markdown(rows: list[dict]) -> str:
    lines = ["| export | command | wall s | peak MiB | vs pandas | vs bare scan |",
             "|---|---|---:|---:|---:|---:|"]
    for export in dict.fromkeys(r["export"] for r in rows):
        group = {r["command"]: r for r in rows if r["export"] == export}
        pandas_s = group["pandas per-layer baseline"]["seconds"]
        bare_s = group["bare SQLite scan"]["seconds"]
        for name, r in group.items():
            lines.append(f"| {export} | {name} | {r['seconds']:.2f} | "
                         f"{r['peak_bytes'] / 2**20:.0f} | {pandas_s / r['seconds']:.1f}x | "
                         f"{r['seconds'] / bare_s:.2f}x |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("exports", type=Path, nargs="+")
    parser.add_argument("--baseline", type=Path, metavar="REPO",
                        help="another checkout whose gpuprof to time beside this one")
    parser.add_argument("--repeat", type=int, default=1,
                        help="rounds per export; the table keeps each command's fastest round")
    args = parser.parse_args()
    rows, times = [], {}
    for export in args.exports:
        measured, times[export.name] = bench(export, args.repeat, args.baseline)
        rows += measured
    print()
    print(markdown(rows))
    print()
    for export, sections in times.items():
        print(f"{export} section seconds: "
              + ", ".join(f"{k} {v:.2f}" for k, v in sections.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
