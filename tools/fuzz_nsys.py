"""Fuzz nsys ingestion and reporting with mutated copies of real exports.

Three kinds of mutation, all deterministic from a seed:
  bytes    overwrite random byte runs (page corruption)
  truncate cut the file at a random length
  values   rewrite rows with wrong types, NULLs, negative/huge numbers; drop tables and
           columns; delete strings (what post-processing tools and bad exports do)

Every case must end in a loaded run (then the full report must render) or a GpuprofError;
anything else is a bug and is printed with its seed.

    python tools/fuzz_nsys.py --cases 2000        # standalone, longer run
"""

from __future__ import annotations

import argparse
import random
import shutil
import sqlite3
import sys
import tempfile
import traceback
from pathlib import Path

from gpuprof.errors import GpuprofError

MUTATIONS = ("bytes", "truncate", "values")
VALUE_POOL = (None, "", "x" * 300, -1, -(2**63), 2**63 - 1, 0, 1.5, float("nan"), b"\x00\xff")


def mutate_bytes(path: Path, rng: random.Random) -> None:
    data = bytearray(path.read_bytes())
    for _ in range(rng.randint(1, 8)):
        start = rng.randrange(0, len(data))
        run = bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 256)))
        data[start:start + len(run)] = run[: len(data) - start]
    path.write_bytes(bytes(data))


def truncate(path: Path, rng: random.Random) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: rng.randrange(0, len(data))])


def mutate_values(path: Path, rng: random.Random) -> None:
    con = sqlite3.connect(path)
    tables = [t for (t,) in con.execute("SELECT name FROM sqlite_master WHERE type='table'")]
    for _ in range(rng.randint(1, 4)):
        table = rng.choice(tables)
        cols = [r[1] for r in con.execute(f"PRAGMA table_info('{table}')")]
        action = rng.choice(("set", "set", "set", "drop_table", "drop_column", "delete"))
        try:
            if action == "set" and cols:
                col = rng.choice(cols)
                value = rng.choice(VALUE_POOL)
                con.execute(f'UPDATE "{table}" SET "{col}" = ? WHERE abs(random()) % 3 = 0', (value,))
            elif action == "drop_table":
                con.execute(f'DROP TABLE "{table}"')
                tables.remove(table)
            elif action == "drop_column" and len(cols) > 1:
                con.execute(f'ALTER TABLE "{table}" DROP COLUMN "{rng.choice(cols)}"')
            elif action == "delete":
                con.execute(f'DELETE FROM "{table}" WHERE abs(random()) % 2 = 0')
        except sqlite3.DatabaseError:
            pass  # constraints (NOT NULL, keys) refuse some rewrites; that's fine
    con.commit()
    con.close()


APPLY = {"bytes": mutate_bytes, "truncate": truncate, "values": mutate_values}


def run_case(source: Path, kind: str, seed: int, workdir: Path) -> str:
    """'ok', 'error' (a GpuprofError) or raises the unexpected exception."""
    from gpuprof.api import load
    from gpuprof.render.report import render

    target = workdir / f"case-{seed}.sqlite"
    shutil.copyfile(source, target)
    APPLY[kind](target, random.Random(seed))
    try:
        run = load(target)
        report = run.report()
        for fmt in ("terminal", "md", "json"):
            render(report, fmt)
        return "ok"
    except GpuprofError:
        return "error"
    finally:
        target.unlink(missing_ok=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fixtures", type=Path, default=Path(__file__).resolve().parents[2] / "shared/fixtures/nsys")
    parser.add_argument("--cases", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    sources = sorted(args.fixtures.glob("*.sqlite"))
    if not sources:
        print(f"no exports under {args.fixtures}", file=sys.stderr)
        return 2
    counts = {"ok": 0, "error": 0, "crash": 0}
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.cases):
            seed = args.seed + i
            source, kind = sources[seed % len(sources)], MUTATIONS[seed % len(MUTATIONS)]
            try:
                counts[run_case(source, kind, seed, Path(tmp))] += 1
            except Exception:  # noqa: BLE001 - a crash is what we are looking for
                counts["crash"] += 1
                print(f"CRASH seed={seed} kind={kind} source={source.name}")
                traceback.print_exc()
    print(f"{args.cases} cases: {counts}")
    return 1 if counts["crash"] else 0


if __name__ == "__main__":
    sys.exit(main())
