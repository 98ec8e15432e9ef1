"""Benchmark: gpuprof's ingestion + layer report against a straightforward pandas approach
and a bare SQLite scan, on scaled copies of a real TensorRT export, in one run.

Each approach runs in a fresh Python process, timed by tools/bench/fresh.py: wall time from
spawn to exit (interpreter start and imports included) and the child's own peak resident
memory. The pandas approach's layer totals are compared with gpuprof's, so both compute the
same thing.

    python tools/bench/bench_nsys.py --kernels 1001308 5000038 [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import textwrap
from pathlib import Path

from fresh import run_fresh

REPO = Path(__file__).resolve().parents[2]
SOURCE = REPO.parent / "shared/fixtures/nsys/Dhruv23__DNNPartitioning__resnet50_profile_20251023_124711.sqlite"

PRELUDE = """
import json, resource, sys, time
t0 = time.perf_counter()
path = sys.argv[1]
t_imported = None  # set by an approach after its imports: the rest is analysis time
"""
# The child's own view (bench_nsys_cli.py times these scripts itself): VmHWM, not getrusage's
# ru_maxrss, which carries the parent's peak over exec; VmHWM restarts with the child's program.
EPILOGUE = """
peak = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM")) * 1024
end = time.perf_counter()
print(json.dumps({"seconds": end - t0, "peak_bytes": peak, "result": result,
                  "after_imports": None if t_imported is None else end - t_imported}))
"""

BARE_SCAN = """
import sqlite3
con = sqlite3.connect(f"file:{path}?mode=ro&immutable=1", uri=True)
queries = [
  'SELECT COUNT(*), TOTAL(start), TOTAL("end"), TOTAL(correlationId), TOTAL(globalPid), TOTAL(shortName) FROM CUPTI_ACTIVITY_KIND_KERNEL',
  'SELECT COUNT(*), TOTAL(start), TOTAL("end"), TOTAL(globalTid), TOTAL(correlationId) FROM CUPTI_ACTIVITY_KIND_RUNTIME',
  'SELECT COUNT(*), TOTAL(start), TOTAL("end"), TOTAL(globalTid), TOTAL(textId), TOTAL(domainId), TOTAL(eventType) FROM NVTX_EVENTS',
]
result = [con.execute(q).fetchone()[0] for q in queries]
"""

# The obvious pandas way: read the tables, join kernels to their launches, then each launch
# to the last TensorRT range that started before it on its thread (merge_asof), keep it when
# that range encloses the launch, and group by layer.
PANDAS = """
import pandas as pd, sqlite3
con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
k = pd.read_sql('SELECT start, "end", correlationId, globalPid, shortName FROM CUPTI_ACTIVITY_KIND_KERNEL', con)
r = pd.read_sql('SELECT start AS rs, "end" AS re, globalTid, correlationId FROM CUPTI_ACTIVITY_KIND_RUNTIME', con)
n = pd.read_sql("SELECT start AS ns, \\"end\\" AS ne, globalTid, text, textId, domainId, eventType FROM NVTX_EVENTS", con)
s = pd.read_sql("SELECT id, value FROM StringIds", con)
trt = n.loc[(n.eventType == 75) & (n.text == "TensorRT"), "domainId"].iloc[0]
n = n[(n.eventType == 59) & (n.domainId == trt)].merge(s, how="left", left_on="textId", right_on="id")
n["layer"] = n["text"].fillna(n["value"])
k["pid"] = (k.globalPid // 2**24) % 2**24
r["pid"] = (r.globalTid // 2**24) % 2**24
kr = k.merge(r, on=["pid", "correlationId"])
kr["dur"] = kr["end"] - kr["start"]
kr = kr.sort_values("rs")
n = n.sort_values("ns")
j = pd.merge_asof(kr, n[["ns", "ne", "globalTid", "layer"]], left_on="rs", right_on="ns", by="globalTid")
j = j[j["ne"] >= j["re"]]
per_layer = j.groupby("layer")["dur"].agg(["sum", "count"])
result = {name: int(v) for name, v in per_layer["sum"].items()}
"""

# As a user does it: gpuprof.load() then run.layers(), on the export or on the run saved by
# 'gpuprof nsys EXPORT --save' (which keeps the NVTX attribution, see prepare()).
GPUPROF = """
import gpuprof, gpuprof.api, gpuprof.ingest.nsys, gpuprof.analyze.layers
t_imported = time.perf_counter()
layers = gpuprof.load(path).layers()
result = {name: int(v) for name, v in zip(layers["layer"], layers["total_ns"]) if v}
"""

GPUPROF_SAVED = GPUPROF

# The same saved run, but the layer table aggregated again from the saved attribution (the
# per-kernel work a saved run without its range table, or a new analysis of it, does).
GPUPROF_SAVED_AGGREGATED = """
import gpuprof, gpuprof.api, gpuprof.analyze.layers as L
t_imported = time.perf_counter()
run = gpuprof.load(path)
layers = L.layer_table(run, run.attributed(L.TENSORRT_DOMAIN))
result = {name: int(v) for name, v in zip(layers["layer"], layers["total_ns"]) if v}
"""

SAVED = "gpuprof saved run + layers"
SAVED_AGGREGATED = "gpuprof saved run, re-aggregated"
APPROACHES = {"bare SQLite scan": BARE_SCAN, "pandas (read_sql + merges)": PANDAS,
              "gpuprof ingest + layers": GPUPROF, SAVED: GPUPROF_SAVED,
              SAVED_AGGREGATED: GPUPROF_SAVED_AGGREGATED}


def measure(code: str, path: Path) -> dict:
    """One approach in a fresh process: wall time and peak RSS as the parent sees them (the
    child's own figures stay in its output for tools/bench/bench_nsys_cli.py, which runs
    them)."""
    script = textwrap.dedent(PRELUDE) + textwrap.dedent(code) + textwrap.dedent(EPILOGUE)
    run = run_fresh([sys.executable, "-c", script, str(path)], cwd=REPO)
    reported = json.loads(run.stdout.strip().splitlines()[-1])
    return {**reported, "seconds": run.seconds, "peak_bytes": run.peak_bytes}


# As 'gpuprof nsys EXPORT --save RUN.gpuprof' writes it; in a child, so that this process stays
# small and the children it times do not inherit its peak memory (see fresh.py).
SAVE = """
import sys, gpuprof
run = gpuprof.load(sys.argv[1])
run.layers()
run.save(sys.argv[2])
"""


def prepare(kernels: int, workdir: Path) -> tuple[Path, Path]:
    export = workdir / f"resnet_{kernels // 1000}k.sqlite"
    if not export.exists():
        subprocess.run([sys.executable, str(REPO / "tools/bench/scale_export.py"), str(SOURCE),
                        str(export), "--kernels", str(kernels)], check=True)
    saved = export.with_suffix(".gpuprof")
    if not saved.exists() or not _has_derived(saved):
        run_fresh([sys.executable, "-c", SAVE, str(export), str(saved)], cwd=REPO)
    return export, saved


def _has_derived(saved: Path) -> bool:
    """Saved runs made before the range table was saved with them are made again."""
    import zipfile

    with zipfile.ZipFile(saved) as zf:
        derived = json.loads(zf.read("meta.json")).get("derived") or {}
    return any(name.startswith("ranges_") for name in derived)


def run(kernels: int, workdir: Path, repeat: int) -> list[dict]:
    export, saved = prepare(kernels, workdir)
    rows = []
    # Rounds interleave the approaches so that a change in machine load hits all of them.
    runs: dict[str, list[dict]] = {name: [] for name in APPROACHES}
    for _ in range(repeat):
        for name, code in APPROACHES.items():
            out = measure(code, saved if "saved" in name else export)
            runs[name].append(out)
            after = "" if out["after_imports"] is None else f" ({out['after_imports']:.2f} s after imports)"
            print(f"{kernels:>9,} {name:28s} {out['seconds']:7.2f} s{after} "
                  f"{out['peak_bytes'] / 2**20:8.0f} MiB", flush=True)
    for name, outs in runs.items():
        best = min(outs, key=lambda o: o["seconds"])  # least disturbed by other load
        rows.append({"kernels": kernels, "approach": name, **best})
    results = {r["approach"]: r["result"] for r in rows}
    same = results["pandas (read_sql + merges)"] == results["gpuprof ingest + layers"] \
        == results[SAVED] == results[SAVED_AGGREGATED]
    print(f"{'':>9} layer totals identical across pandas and gpuprof: {same}")
    if not same:
        raise SystemExit("layer totals differ between approaches")
    return rows


def markdown(rows: list[dict]) -> str:
    lines = ["| kernels | approach | wall s | after imports s | peak MiB | vs pandas | vs bare scan |",
             "|---:|---|---:|---:|---:|---:|---:|"]
    for size in sorted({r["kernels"] for r in rows}):
        group = {r["approach"]: r for r in rows if r["kernels"] == size}
        pandas_s = group["pandas (read_sql + merges)"]["seconds"]
        bare_s = group["bare SQLite scan"]["seconds"]
        for name, r in group.items():
            after = "" if r["after_imports"] is None else f"{r['after_imports']:.2f}"
            lines.append(f"| {size:,} | {name} | {r['seconds']:.2f} | {after} | {r['peak_bytes'] / 2**20:.0f} "
                         f"| {pandas_s / r['seconds']:.1f}x | {r['seconds'] / bare_s:.2f}x |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kernels", type=int, nargs="+", default=[1_000_000, 5_000_000])
    parser.add_argument("--workdir", type=Path, default=REPO / "bench-out")
    parser.add_argument("--repeat", type=int, default=1,
                        help="rounds per size; the table keeps each approach's fastest round")
    args = parser.parse_args()
    args.workdir.mkdir(exist_ok=True)
    rows = [row for size in args.kernels for row in run(size, args.workdir, args.repeat)]
    print()
    print(markdown(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
