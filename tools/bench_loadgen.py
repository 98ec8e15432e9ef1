"""Benchmark gpuprof's load generator on loopback (a measurement, not a test).

    .venv/bin/python tools/bench_loadgen.py [--requests 400] [--json out.json]

Starts the bundled tritonserver three times in turn (each stopped at the end):
1. Client-side overhead per request at concurrency 1 = client latency minus the server's own
   span from the trace (frontend receive start to response send start; same request id, same
   clock), median over requests; also client median minus the server's mean request time from
   the statistics extension. For gpuprof and for a plain ``tritonclient`` loop (``client.infer``
   in a for loop), HTTP and gRPC; on a one-node Identity model ([1, 16] floats: the server does
   almost nothing, so client and frontend costs stand alone) and on PP-OCR mobile cls (real).
2. The Identity model: the highest request rate sustained (constant rate, achieved throughput
   within 5 % of the target and fewer than 5 % of requests starting over 1 ms late).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gpuprof.analyze import perf_trace  # noqa: E402
from gpuprof.capture.loadgen import LoadSpec  # noqa: E402
from gpuprof.capture.loadgen.server_api import ServerAPI, stats_delta  # noqa: E402
from gpuprof.capture.loadgen.tracing import TraceSession  # noqa: E402
from gpuprof.capture.triton_server import TraceConfig, serve_onnx  # noqa: E402
from gpuprof.ingest.triton_trace import check_part  # noqa: E402
from gpuprof.pipeline.sweep import read_trace_requests, run_sweep  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
CLS = REPO / "models" / "ppocr_mobile_v2_cls.onnx"
SHAPE = (1, 3, 48, 192)


def overhead_row(name: str, client: pd.DataFrame, trace: pd.DataFrame, prefix: str,
                 stats: dict) -> dict:
    joined = perf_trace.join_requests(client, perf_trace.server_spans(trace, prefix))
    joined = joined.astype({c: "float64" for c in perf_trace.JOINED_COLUMNS[3:]})
    # the server's part: frontend receive start .. response send start, from the trace
    server_ns = joined["client_latency_ns"] - joined["to_server_ns"] - joined["from_server_ns"]
    success = stats["success"]
    return {"client": name, "requests": int(len(client)), "traced": int(len(joined)),
            "to_server_p50_us": joined["to_server_ns"].median() / 1e3,
            "from_server_p50_us": joined["from_server_ns"].median() / 1e3,
            "client_p50_us": client["latency_ns"].median() / 1e3,
            "server_span_p50_us": server_ns.median() / 1e3,
            "overhead_p50_us": (joined["client_latency_ns"] - server_ns).median() / 1e3,
            "overhead_p90_us": (joined["client_latency_ns"] - server_ns).quantile(0.9) / 1e3,
            "client_p50_minus_stats_mean_us":
                (client["latency_ns"].median() - success[1] / max(success[0], 1)) / 1e3}


Run = tuple[pd.DataFrame, pd.DataFrame, str, dict]  # client records, trace, id prefix, stats


def gpuprof_client(server, protocol: str, requests: int, shape) -> Run:
    url = server.http_url if protocol == "http" else server.grpc_url
    spec = LoadSpec(model=server.model_name, url=url, protocol=protocol, shapes={"x": shape},
                    measurement_mode="count_windows", measurement_request_count=requests // 3,
                    max_trials=3, warmup_ms=300, trace=True, max_duration_s=120)
    api = ServerAPI(server.http_url)
    before = api.stats(server.model_name)
    result = run_sweep(spec)
    delta = stats_delta(before, api.stats(server.model_name))
    api.close()
    client = result.requests_table()
    return client, read_trace_requests(result.trace_files), result.prefix, delta


def plain_client(server, protocol: str, requests: int, shape) -> Run:
    """What a user would write: one tritonclient, client.infer() in a loop."""
    if protocol == "http":
        import tritonclient.http as tc
        client = tc.InferenceServerClient(server.http_url)
    else:
        import tritonclient.grpc as tc
        client = tc.InferenceServerClient(server.grpc_url)
    data = np.random.default_rng(0).random(shape, dtype=np.float32)
    tensor = tc.InferInput("x", list(shape), "FP32")
    tensor.set_data_from_numpy(data)
    api = ServerAPI(server.http_url)
    session = TraceSession(api, server.model_name, check_part).start()
    prefix, rows = f"plain-{protocol}-", []
    for _ in range(20):  # warm-up, untimed
        client.infer(server.model_name, [tensor])
    before = api.stats(server.model_name)
    for i in range(requests):
        start = time.perf_counter_ns()
        client.infer(server.model_name, [tensor], request_id=f"{prefix}{i}")
        rows.append((f"{prefix}{i}", start, time.perf_counter_ns()))
    delta = stats_delta(before, api.stats(server.model_name))
    files = session.finish()
    api.close()
    client.close()
    frame = pd.DataFrame(rows, columns=["request_id", "start_ns", "end_ns"])
    frame = frame.assign(ok=True, level=1, trial=0, latency_ns=frame["end_ns"] - frame["start_ns"])
    return frame, read_trace_requests(files), prefix, delta


def measure_overhead(model: Path, shape, requests: int) -> list[dict]:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        trace = TraceConfig(Path(tmp) / "trace.json", levels=("OFF",))
        with serve_onnx(model, trace=trace) as server:
            for protocol in ("http", "grpc"):
                for name, fn in (("gpuprof", gpuprof_client), ("plain tritonclient", plain_client)):
                    client, tr, prefix, delta = fn(server, protocol, requests, shape)
                    row = overhead_row(f"{name} {protocol}", client, tr, prefix, delta)
                    rows.append({"model": model.stem, **row})
                    print(json.dumps(rows[-1], default=float), file=sys.stderr)
    return rows


def identity_model(folder: Path) -> Path:
    import onnx
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 16])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 16])
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "identity", [x], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    path = folder / "identity.onnx"
    onnx.save(model, path)
    return path


def measure_max_rate(model: Path, rates: list[float]) -> list[dict]:
    rows = []
    with serve_onnx(model) as server:
        for rate in rates:
            spec = LoadSpec(model=server.model_name, url=server.http_url, mode="request_rate",
                            levels=[rate], measurement_interval_ms=1000, max_trials=3,
                            warmup_ms=300, max_threads=16, max_duration_s=60,
                            stability_pct=100)
            metrics = run_sweep(spec).levels[0].metrics
            row = {"target_rate": rate, "achieved_infer_s": metrics["throughput_infer_s"],
                   "late_fraction": metrics["delayed"] / max(metrics["requests"], 1),
                   "p50_us": metrics["latency_p50_ns"] / 1e3,
                   "p99_us": metrics["latency_p99_ns"] / 1e3, "errors": metrics["errors"]}
            row["sustained"] = (row["achieved_infer_s"] >= 0.95 * rate
                                and row["late_fraction"] < 0.05 and not row["errors"])
            rows.append(row)
            print(json.dumps(row, default=float), file=sys.stderr)
            if not row["sustained"]:
                break
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=600)
    parser.add_argument("--rates", default="250,500,750,1000,1500,2000,3000")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        identity = identity_model(Path(tmp))
        overhead = (measure_overhead(identity, (1, 16), args.requests)
                    + measure_overhead(CLS, SHAPE, args.requests))
        rates = measure_max_rate(identity, [float(r) for r in args.rates.split(",")])
    sustained = [r["target_rate"] for r in rates if r["sustained"]]
    print(pd.DataFrame(overhead).to_string(index=False, float_format=lambda v: f"{v:.1f}"))
    print()
    print(pd.DataFrame(rates).to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    print(f"\nhighest constant rate sustained: {max(sustained) if sustained else 'none'} req/s")
    if args.json:
        args.json.write_text(json.dumps({"overhead": overhead, "rates": rates}, default=float,
                                        indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
