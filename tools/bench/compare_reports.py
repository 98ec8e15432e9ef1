"""Do two checkouts write the same `gpuprof nsys` report? (issue 10, "Correctness")

    python tools/bench/compare_reports.py BASE_CHECKOUT NEW_CHECKOUT [EXPORT_OR_DIR ...]

Runs `python -m gpuprof nsys EXPORT --format json -o r.json` with each checkout (its root as
the working directory, so `-m` imports that checkout's gpuprof) on every export given, by
default every shared export in /work/shared/fixtures/nsys, and compares the two JSON reports
as parsed values: every section, every row, every note. Prints one line per export
(identical, DIFFERENT with the first differing path, or refused by both with the reason)
and exits 1 if any report differs or only one checkout refused an export.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

DEFAULT_EXPORTS = Path("/work/shared/fixtures/nsys")


def report(checkout: Path, export: Path, out: Path) -> tuple[object | None, str]:
    """The parsed JSON report, or None and the command's last error line when it refused."""
    argv = [sys.executable, "-m", "gpuprof", "nsys", str(export), "--format", "json", "-o", str(out)]
    env = dict(os.environ, PYTHONPATH=str(checkout))
    done = subprocess.run(argv, cwd=checkout, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        lines = done.stderr.strip().splitlines() or ["(no message)"]
        return None, f"exit {done.returncode}: {lines[-1][:150]}"
    return json.loads(out.read_text()), ""


def first_difference(a, b, path: str = "") -> str | None:
    """Where two parsed JSON values first differ, as a path like .sections[2].rows[5]."""
    if type(a) is not type(b):
        return f"{path or '.'}: {type(a).__name__} vs {type(b).__name__}"
    if isinstance(a, dict):
        for key in sorted(set(a) | set(b)):
            if key not in a or key not in b:
                return f"{path}.{key}: only in {'new' if key in b else 'base'}"
            found = first_difference(a[key], b[key], f"{path}.{key}")
            if found:
                return found
        return None
    if isinstance(a, list):
        if len(a) != len(b):
            return f"{path}: {len(a)} vs {len(b)} items"
        for i, (x, y) in enumerate(zip(a, b)):
            found = first_difference(x, y, f"{path}[{i}]")
            if found:
                return found
        return None
    return None if a == b else f"{path}: {str(a)[:60]!r} vs {str(b)[:60]!r}"


def compare(base: Path, new: Path, export: Path, work: Path) -> tuple[str, bool]:
    """(one line for the export, whether it counts as a failure)."""
    (work / "base").mkdir(exist_ok=True)
    (work / "new").mkdir(exist_ok=True)
    a, a_err = report(base, export, work / "base" / f"{export.stem}.json")
    b, b_err = report(new, export, work / "new" / f"{export.stem}.json")
    if a is None and b is None:
        return f"refused by both  {export.name}: {b_err}", a_err.split(":")[0] != b_err.split(":")[0]
    if a is None or b is None:
        return f"REFUSED BY ONE   {export.name}: base {a_err or 'ok'}; new {b_err or 'ok'}", True
    where = first_difference(a, b)
    if where:
        return f"DIFFERENT        {export.name}: {where}", True
    return f"identical        {export.name}", False


def exports_of(paths: list[Path]) -> list[Path]:
    found: list[Path] = []
    for path in paths or [DEFAULT_EXPORTS]:
        found += sorted(path.glob("*.sqlite")) if path.is_dir() else [path]
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("base", type=Path, help="the checkout before the change")
    parser.add_argument("new", type=Path, help="the checkout with the change")
    parser.add_argument("exports", type=Path, nargs="*", help=f"default: {DEFAULT_EXPORTS}")
    parser.add_argument("--jobs", type=int, default=2, help="exports compared at once")
    args = parser.parse_args()
    exports = exports_of(args.exports)
    if not exports:
        raise SystemExit("no exports to compare")
    with tempfile.TemporaryDirectory(prefix="gpuprof-compare-") as tmp:
        def one(export: Path) -> tuple[str, bool]:
            work = Path(tmp) / str(exports.index(export))
            work.mkdir()
            return compare(args.base.resolve(), args.new.resolve(), export, work)

        with ThreadPoolExecutor(args.jobs) as pool:
            results = list(pool.map(one, exports))
    for line, _ in results:
        print(line)
    same = sum(line.startswith("identical") for line, _ in results)
    refused = sum(line.startswith("refused by both") for line, _ in results)
    failed = sum(bad for _, bad in results)
    print(f"{same} of {len(results)} identical, {refused} refused by both, {failed} failing")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
