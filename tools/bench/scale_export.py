"""Make a large nsys export from a real one by replicating its event rows.

Copy k of every kernel, runtime call, copy/set and NVTX range is shifted in time by k spans
(so copies never overlap) and its correlation id by k times the largest id (so launches still
match their kernels). Strings, threads, GPUs and the NVTX domain stay as they were, so the
result is what nsys would export for a k-times longer run of the same program.

    python tools/bench/scale_export.py SRC.sqlite OUT.sqlite --kernels 5000000
"""

from __future__ import annotations

import argparse
import math
import shutil
import sqlite3
import sys
from pathlib import Path

EVENT_TABLES = {  # table -> (time columns, has correlation id, extra filter for copies k > 0)
    "CUPTI_ACTIVITY_KIND_KERNEL": (("start", "end"), True, ""),
    "CUPTI_ACTIVITY_KIND_RUNTIME": (("start", "end"), True, ""),
    "CUPTI_ACTIVITY_KIND_MEMCPY": (("start", "end"), True, ""),
    "CUPTI_ACTIVITY_KIND_MEMSET": (("start", "end"), True, ""),
    "NVTX_EVENTS": (("start", "end"), False, "AND eventType != 75"),  # one domain creation
}


def scale(src: Path, out: Path, copies: int) -> None:
    shutil.copyfile(src, out)
    con = sqlite3.connect(out)
    con.execute("PRAGMA journal_mode = OFF")
    con.execute("PRAGMA synchronous = OFF")
    present = {n for (n,) in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    tables = [t for t in EVENT_TABLES if t in present]
    first, last = _span(con, tables)
    shift = (last - first) + 1_000_000  # 1 ms apart
    corr = max(con.execute(f"SELECT MAX(correlationId) FROM {t}").fetchone()[0] or 0
               for t in tables if EVENT_TABLES[t][1]) + 1
    for table in tables:
        _replicate(con, table, copies, shift, corr)
    con.commit()
    con.close()


def _span(con, tables) -> tuple[int, int]:
    lows, highs = zip(*(con.execute(f'SELECT MIN(start), MAX(COALESCE("end", start)) FROM {t}').fetchone()
                        for t in tables))
    return min(lows), max(highs)


def _replicate(con, table: str, copies: int, shift: int, corr: int) -> None:
    times, has_corr, extra = EVENT_TABLES[table]
    cols = [r[1] for r in con.execute(f"PRAGMA table_info('{table}')")]
    exprs = []
    for c in cols:
        if c in times:
            exprs.append(f'"{c}" + c.k * {shift}')
        elif c == "correlationId" and has_corr:
            exprs.append(f'"{c}" + c.k * {corr}')
        else:
            exprs.append(f'"{c}"')
    quoted = ", ".join(f'"{c}"' for c in cols)
    con.execute(f"""
        WITH RECURSIVE c(k) AS (SELECT 1 UNION ALL SELECT k + 1 FROM c WHERE k < {copies - 1})
        INSERT INTO {table} ({quoted})
        SELECT {', '.join(exprs)} FROM {table}, c WHERE 1 {extra}""")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("src", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--kernels", type=int, required=True, help="about how many kernels to make")
    args = parser.parse_args()
    con = sqlite3.connect(f"file:{args.src}?mode=ro", uri=True)
    base = con.execute("SELECT COUNT(*) FROM CUPTI_ACTIVITY_KIND_KERNEL").fetchone()[0]
    con.close()
    copies = max(1, math.ceil(args.kernels / base))
    scale(args.src, args.out, copies)
    print(f"{args.out}: {copies} copies of {base} kernels = {copies * base:,} kernels, "
          f"{args.out.stat().st_size / 1e9:.2f} GB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
