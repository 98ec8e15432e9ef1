#!/usr/bin/env python3
"""What `gpuprof perf --net` costs, measured as users run it.

1. Capture overhead: `gpuprof perf` with and without `--net` (each a fresh process, the
   order turned each round so drift hits all) against one real Triton server on loopback, at
   concurrency 1 and 4; the client p50/p99 latency and throughput of each run, from the
   perf_analyzer CSV it writes. Needs root and bpftrace. Two more variants say where a cost
   is (`--variants`): `program`, plain `gpuprof perf` beside the runs program started here
   (the capture alone, without what `--net` does in gpuprof), and `count`, beside a bpftrace
   program on the same tracepoints and port that only counts calls in the kernel (the
   floor: what attaching the probes costs).
2. The join at scale: a real `--net --trace` run's capture and requests, replicated to N
   requests (each copy moved later in time and onto other client ports, so nothing overlaps),
   then joined as `gpuprof perf` joins them (match_calls, network_path, the clock check), in
   a fresh process, timed after imports.

    .venv/bin/python tools/bench_perf_net.py --rounds 3 --join-requests 100000
    .venv/bin/python tools/bench_perf_net.py --rounds 8 --variants off net program count \
        --levels 1 --skip-join
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[1]
# this checkout's gpuprof, here and in every child (run from the repo root: python -m / -c
# put the working directory first), not whichever one the environment installed
sys.path.insert(0, str(REPO))
MODEL = REPO / "models" / "ppocr_mobile_v2_cls.onnx"
SHAPE = "x:1,3,48,192"


def perf(url: str, level: int, out: Path, net: bool, trace: bool = False) -> dict:
    cmd = [sys.executable, "-m", "gpuprof", "perf", "-m", MODEL.stem, "-u", url, "--shape",
           SHAPE, "--concurrency-range", str(level), "-p", "2000", "-r", "3", "--no-live",
           "-f", str(out / "perf.csv")]
    if net:
        cmd += ["--net", "--net-file", str(out / "net.txt")]
    if trace:
        # every request traced: the CSV then holds every request whose traffic the capture
        # has, so the replicated join sees the product's ratio of calls to requests (with
        # --trace-rate auto the CSV held 1 in 6 at c=4, the capture all six: 3x the calls)
        cmd += ["--trace", "--trace-rate", "1", "--trace-csv", str(out / "requests.csv")]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=REPO)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)}\n{done.stderr[-2000:]}")
    row = pd.read_csv(out / "perf.csv").iloc[0]
    return {"p50_us": int(row["p50 latency"]), "p99_us": int(row["p99 latency"]),
            "infer_s": float(row["Inferences/Second"])}


COUNT_PROGRAM = r"""
BEGIN { printf("ATTACHED\n"); }
tracepoint:sock:sock_send_length, tracepoint:sock:sock_recv_length
/args->protocol == 6 && args->ret > 0/
{
	$sk = (struct sock *)args->sk;
	if ($sk->__sk_common.skc_num == $1 || bswap($sk->__sk_common.skc_dport) == $1) {
		@calls = count();
	}
}
"""


def overhead(url: str, rounds: int, levels: list[int], variants: list[str]) -> list[dict]:
    rows = []
    for level in levels:
        for n in range(rounds):
            turn = n % len(variants)   # each round starts with the next variant
            for variant in variants[turn:] + variants[:turn]:
                with tempfile.TemporaryDirectory() as tmp:
                    rows.append({"level": level, "round": n, "variant": variant,
                                 **run_variant(url, level, Path(tmp), variant)})
                print(json.dumps(rows[-1]), flush=True)
    return rows


OLD_PROGRAM: Path | None = None   # --old-program: a .bt file of net_runs.bt's parameters


def run_variant(url: str, level: int, out: Path, variant: str) -> dict:
    """One fresh `gpuprof perf` run: plain (off), with --net (net), or plain beside a
    capture this process runs (program: the runs program; count: the counting one; old:
    the program given by --old-program, e.g. an earlier net_runs.bt)."""
    if variant in ("off", "net"):
        return perf(url, level, out, net=variant == "net")
    port = int(url.rsplit(":", 1)[1])
    with beside(variant, port, out):
        return perf(url, level, out, net=False)


@contextlib.contextmanager
def beside(variant: str, port: int, out: Path):
    if variant in ("program", "nice"):
        from gpuprof.capture.net import NetCapture

        with NetCapture(ports=[port], out=out / "net.txt", runs=True) as capture:
            if variant == "nice":   # bpftrace's threads at the lowest CPU priority
                for task in Path(f"/proc/{capture.pid}/task").iterdir():
                    os.setpriority(os.PRIO_PROCESS, int(task.name), 19)
            yield
        return
    if variant == "count":
        (out / "count.bt").write_text(COUNT_PROGRAM)
        cmd = ["bpftrace", "-B", "none", str(out / "count.bt"), str(port)]
    else:
        from gpuprof import bpf

        assert OLD_PROGRAM is not None, "--old-program FILE runs the 'old' variant"
        # all the parameters: a map program reads its map size in $14 (missing, bpftrace
        # reads 0: every run counted lost, none kept); the per-run printf one ignores it
        cmd = ["bpftrace", "-B", "none", str(OLD_PROGRAM), *bpf.program_args(ports=[port])]
    with open(out / "beside.txt", "wb") as sink:
        proc = subprocess.Popen(cmd, stdout=sink, stderr=subprocess.DEVNULL,
                                env={**os.environ, "BPFTRACE_MAP_KEYS_MAX": "65536"})
    try:
        # the count program's BEGIN line, or the shipped programs' column header
        while not re.search(rb"^(ATTACHED|TIME )", (out / "beside.txt").read_bytes(), re.M):
            if proc.poll() is not None:
                raise SystemExit(f"{' '.join(cmd)} did not start")
            time.sleep(0.05)
        yield
    finally:
        stop(proc)


def stop(proc: subprocess.Popen) -> None:
    # a SIGINT was once seen to go unanswered under load: ask again, then kill
    for _ in range(3):
        proc.send_signal(signal.SIGINT)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(10)
            return
    proc.kill()
    proc.wait()


def paired(rows: pd.DataFrame) -> pd.DataFrame:
    """Each variant against the plain run of the same round (run minutes apart at most, so
    slow drift in the machine's load cancels): the median ratio over the rounds."""
    base = rows[rows["variant"] == "off"].set_index(["level", "round"])
    out = []
    for (level, variant), runs in rows[rows["variant"] != "off"].groupby(["level", "variant"]):
        own = runs.set_index(["level", "round"])
        ratio = own[["p50_us", "p99_us"]] / base.loc[own.index, ["p50_us", "p99_us"]]
        out.append({"level": level, "variant": variant, "rounds": len(ratio),
                    "p50_ratio": ratio["p50_us"].median(), "p99_ratio": ratio["p99_us"].median()})
    return pd.DataFrame(out)


JOIN_CHILD = r"""
import os, sys, time, json
import pandas as pd
t0 = time.perf_counter()
from gpuprof.pipeline.perf_run import analyze_join
requests = pd.read_parquet(sys.argv[1]); events = pd.read_parquet(sys.argv[2])
spans = pd.read_parquet(sys.argv[3])
t1 = time.perf_counter()
path, match, clocks = analyze_join(requests, events, int(sys.argv[4]), int(sys.argv[5]), spans)
t2 = time.perf_counter()
print(json.dumps({"requests": len(requests), "calls": len(events), "matched": len(path),
                  "imports_s": t1 - t0, "join_s": t2 - t1}))
"""


def join_at_scale(url: str, n_requests: int) -> dict:
    from gpuprof.ingest.net_capture import read_net_capture

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        perf(url, 4, out, net=True, trace=True)
        requests = pd.read_csv(out / "requests.csv")
        events, _ = read_net_capture(out / "net.txt")
        port = int(url.rsplit(":", 1)[1])
        reqs, evs, spans = _replicate(requests, events, port, n_requests)
        for name, frame in (("r", reqs), ("e", evs), ("s", spans)):
            frame.to_parquet(out / f"{name}.parquet")
        pid = int(requests.attrs.get("pid", 0)) or _client_pid(events, port)
        child = subprocess.run([sys.executable, "-c", JOIN_CHILD, str(out / "r.parquet"),
                                str(out / "e.parquet"), str(out / "s.parquet"), str(port),
                                str(pid)], check=True, capture_output=True, text=True,
                               cwd=REPO)
        return json.loads(child.stdout)


def _client_pid(events: pd.DataFrame, port: int) -> int:
    client = events[events["remote_port"] == port]
    return int(client["pid"].mode().iloc[0])


def _replicate(requests, events, port, n):
    """Copies of the run, each shifted past the previous one in time and onto new ports."""
    base = requests.dropna(subset=["net_client_send_ns"])
    copies = -(-n // len(base))
    span = int(events["time_ns"].max() - events["time_ns"].min()) + 1
    ports = sorted(base["client_port"].unique())
    reqs, evs, spans = [], [], []
    for k in range(copies):
        remap = {p: 1024 + (k * len(ports) + i) % 60000 for i, p in enumerate(ports)}
        r = base.assign(start_ns=base["start_ns"] + k * span, end_ns=base["end_ns"] + k * span,
                        sent_ns=base["start_ns"] + k * span, recv_ns=base["end_ns"] + k * span,
                        client_port=base["client_port"].map(remap),
                        request_id=base["request_id"] + f"-{k}")
        e = events.assign(time_ns=events["time_ns"] + k * span)
        for column in ("local_port", "remote_port"):
            e[column] = e[column].replace(remap)
        s = r[["request_id"]].assign(server_start_ns=r["start_ns"] + base["net_client_send_ns"]
                                     + base["net_wire_in_ns"] + base["net_server_read_ns"],
                                     send_start_ns=r["end_ns"] - base["net_client_recv_ns"]
                                     - base["net_wire_out_ns"] - base["net_server_send_ns"])
        reqs.append(r), evs.append(e), spans.append(s)
    keep = ["request_id", "client_port", "start_ns", "sent_ns", "recv_ns", "end_ns"]
    return (pd.concat(reqs, ignore_index=True)[keep].head(n),
            pd.concat(evs, ignore_index=True), pd.concat(spans, ignore_index=True).head(n))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--join-requests", type=int, default=100_000)
    parser.add_argument("--skip-overhead", action="store_true")
    parser.add_argument("--skip-join", action="store_true")
    parser.add_argument("--levels", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--variants", nargs="+", default=["off", "net"],
                        choices=["off", "net", "program", "nice", "count", "old"])
    parser.add_argument("--old-program", type=Path,
                        help="the 'old' variant's bpftrace program (net_runs.bt's parameters)")
    args = parser.parse_args()
    global OLD_PROGRAM
    OLD_PROGRAM = args.old_program
    from gpuprof.capture.triton_server import TraceConfig, serve_onnx

    trace_dir = Path(tempfile.mkdtemp(prefix="gpuprof-bench-trace-"))
    trace = TraceConfig(trace_dir / "trace.json", levels=("OFF",))   # --trace switches it on
    with serve_onnx(MODEL, trace=trace) as server:
        url = server.http_url
        if not args.skip_overhead:
            rows = pd.DataFrame(overhead(url, args.rounds, args.levels, args.variants))
            summary = rows.groupby(["level", "variant"])[["p50_us", "p99_us", "infer_s"]].median()
            print(summary.to_string())
            if "off" in args.variants:
                print(paired(rows).to_string(index=False))
        if args.skip_join:
            return
        started = time.perf_counter()
        print(json.dumps(join_at_scale(url, args.join_requests)))
        print(f"(join benchmark took {time.perf_counter() - started:.1f} s in all)")


if __name__ == "__main__":
    main()
