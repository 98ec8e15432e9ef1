"""Reproduce a tritonserver 2.51 crash that any fast HTTP client can trigger (gpuprof issue 9).

What it shows: a server tracing every request (``--trace-config triton,file=...
--trace-config level=TIMESTAMPS --trace-config rate=1``) with a python-backend model dies
within seconds under a few thousand HTTP inference requests a second: ``free(): invalid
pointer`` then ``Signal (6)`` inside ``TRITONSERVER_InferenceRequestDelete`` (from
``TRITONBACKEND_RequestRelease``), or ``Signal (11)``, sometimes after answering a request
with HTTP 400. The same load on the same server started without tracing (``--no-trace``)
leaves it alive. One connection is enough; more crash it sooner. Upstream reports the same
(triton-inference-server/server#7795: tracing with no sampling crashes at high QPS).

The client is plain sockets (keep-alive HTTP/1.1, one request in flight per connection, binary
input and output as tritonclient and gpuprof send them); no gpuprof load-generator code is
involved. gpuprof is used only to find and start the bundled server. Each run starts a fresh
server on a fresh trace file.

    python tools/repro/triton_http_trace_crash.py --runs 5              # crashes it
    python tools/repro/triton_http_trace_crash.py --runs 5 --no-trace   # does not

Measured on the 2-core development machine, 2 connections, 15 s a run: traced, it
crashed in 5 of 6 runs (one more answered HTTP 400 first); untraced, 0 of 3.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import socket
import tempfile
import threading
import time
from pathlib import Path

from gpuprof.capture.triton_server import TraceConfig, TritonServer

CONFIG = """name: "double"
backend: "python"
max_batch_size: 8
input [ { name: "INPUT0" data_type: TYPE_FP32 dims: [ 16 ] } ]
output [ { name: "OUTPUT0" data_type: TYPE_FP32 dims: [ 16 ] } ]
instance_group [ { kind: KIND_CPU count: 1 } ]
"""

# The stub's interpreter ignores PYTHONPATH: gpuprof's server passes its site-packages here.
# Under numpy 2 the stub's numpy bridge misreads arrays (as_numpy gives wrong values,
# pb_utils.Tensor(name, array) a wrong size), so tensors cross through DLPack; the capsule is
# then marked taken the standard way (see gpuprof/capture/triton_onnx_model.py).
MODEL = """import ctypes, os, sys
sys.path[:0] = [p for p in os.environ.get("GPUPROF_SITE_PACKAGES", "").split(os.pathsep) if p]
import numpy as np
import triton_python_backend_utils as pb_utils
USED = ctypes.c_char_p(b"used_dltensor")
ctypes.pythonapi.PyCapsule_SetName.argtypes = [ctypes.py_object, ctypes.c_char_p]

class TritonPythonModel:
    def execute(self, requests):
        out = []
        for request in requests:
            x = np.from_dlpack(pb_utils.get_input_tensor_by_name(request, "INPUT0"))
            capsule = (x * 2).astype(np.float32).__dlpack__()
            tensor = pb_utils.Tensor.from_dlpack("OUTPUT0", capsule)
            ctypes.pythonapi.PyCapsule_SetName(capsule, USED)
            out.append(pb_utils.InferenceResponse(output_tensors=[tensor]))
        return out
"""

NOT_OK: list[str] = []  # statuses other than 200, from any client thread

INPUT = bytes(64)  # one FP32 [1, 16] tensor, sent as binary data after the JSON header


def write_repository(root: Path) -> Path:
    model = root / "double"
    (model / "1").mkdir(parents=True)
    (model / "config.pbtxt").write_text(CONFIG)
    (model / "1" / "model.py").write_text(MODEL)
    return root


def request_bytes(port: int) -> bytes:
    header = {"inputs": [{"name": "INPUT0", "shape": [1, 16], "datatype": "FP32",
                          "parameters": {"binary_data_size": len(INPUT)}}]}
    header["outputs"] = [{"name": "OUTPUT0", "parameters": {"binary_data": True}}]
    text = json.dumps(header).encode()
    body = text + INPUT
    head = (f"POST /v2/models/double/infer HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            f"Content-Type: application/octet-stream\r\nContent-Length: {len(body)}\r\n"
            f"Inference-Header-Content-Length: {len(text)}\r\n\r\n").encode()
    return head + body


def client(port: int, payload: bytes, stop: threading.Event, answered: list[int]) -> None:
    """Keep-alive connection, one request at a time; stops at the first connection error."""
    done = 0
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            buffer = b""
            while not stop.is_set():
                sock.sendall(payload)
                status, buffer = read_response(sock, buffer)
                if status != b"200":  # the model works: anything else is the server failing
                    NOT_OK.append(status.decode())
                    break
                done += 1
    except OSError:
        pass  # the server died: the run reports it
    answered.append(done)


def read_response(sock: socket.socket, buffer: bytes) -> tuple[bytes, bytes]:
    """(status code, what is left in the buffer after this response)."""
    while b"\r\n\r\n" not in buffer:
        buffer += receive(sock)
    end = buffer.index(b"\r\n\r\n") + 4
    length = int(buffer.lower().split(b"content-length:")[1].split(b"\r\n")[0])
    while len(buffer) < end + length:
        buffer += receive(sock)
    return buffer.split(b" ", 2)[1], buffer[end + length:]


def receive(sock: socket.socket) -> bytes:
    chunk = sock.recv(65536)
    if not chunk:
        raise ConnectionResetError("closed")
    return chunk


def flip_rate(port: int, rate: int, stop: threading.Event, period_s: float = 0.5) -> None:
    """Switch the model's trace rate between next-to-none and ``rate`` while the load runs,
    as ``gpuprof perf --trace`` does at each level's warm-up (the trace-setting extension)."""
    settings = [json.dumps({"trace_rate": value}).encode() for value in ("1000000", str(rate))]
    n = 0
    while not stop.wait(period_s):
        body = settings[n % 2]
        n += 1
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 5) as sock:
            sock.sendall(f"POST /v2/models/double/trace/setting HTTP/1.1\r\nHost: x\r\n"
                         f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
                         f"Connection: close\r\n\r\n".encode() + body)
            sock.recv(65536)


def post_setting(port: int, settings: dict, path: str = "/v2/models/double/trace/setting") -> None:
    body = json.dumps(settings).encode()
    with socket.create_connection(("127.0.0.1", port), 5) as sock:
        sock.sendall(f"POST {path} HTTP/1.1\r\nHost: x\r\n"
                     f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
                     f"Connection: close\r\n\r\n".encode() + body)
        sock.recv(65536)


def one_run(repo: Path, connections: int, seconds: float, trace: bool, rate: int = 1,
            log_frequency: int = 0, flip: bool = False, api: str = "") -> bool:
    with tempfile.TemporaryDirectory() as tmp:
        config = TraceConfig(Path(tmp) / "trace.json", rate=rate, log_frequency=log_frequency,
                             levels=("OFF",) if api else ("TIMESTAMPS",))
        server = TritonServer(repo, keep_log=True, trace=config if trace else None)
        server.start()
        if api:  # tracing switched on for the model at run time, as gpuprof perf --trace does
            path = "/v2/trace/setting" if api == "global" else "/v2/models/double/trace/setting"
            post_setting(server.http_port, {"trace_level": ["TIMESTAMPS"], "trace_rate": str(rate),
                                            "log_frequency": str(log_frequency)}, path)
        stop, answered = threading.Event(), []
        NOT_OK.clear()
        payload = request_bytes(server.http_port)
        threads = [threading.Thread(target=client, args=(server.http_port, payload, stop, answered))
                   for _ in range(connections)]
        if flip:
            threads.append(threading.Thread(target=flip_rate, args=(server.http_port, rate, stop)))
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and server.running():
            time.sleep(0.1)
        stop.set()
        for thread in threads:
            thread.join()
        alive = server.running()
        crash = [line for line in server.log_tail(60).splitlines()
                 if "Signal" in line or "free()" in line or "Non-graceful" in line]
        print(f"{'alive  ' if alive else 'CRASHED'} {sum(answered):>7} requests answered"
              + (f"  (answers other than 200: {sorted(set(NOT_OK))})" if NOT_OK else "")
              + (f"  ({'; '.join(crash[:2])}; log {server.log_path})" if crash else ""),
              flush=True)
        server.keep_log = not alive
        server.stop()
        return alive


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--connections", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--no-trace", action="store_true", help="start the server untraced")
    parser.add_argument("--rate", type=int, default=1, help="trace one request in N")
    parser.add_argument("--log-frequency", type=int, default=0)
    parser.add_argument("--api", choices=["", "model", "global"], default="",
                        help="start untraced, switch tracing on through the API (the model's "
                             "setting or the global one)")
    parser.add_argument("--flip", action="store_true",
                        help="switch the trace rate (1000000 <-> --rate) every 0.5 s under load")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        repo = write_repository(Path(tmp))
        crashed = sum(not one_run(repo, args.connections, args.seconds, not args.no_trace,
                                  args.rate, args.log_frequency, args.flip, args.api)
                      for _ in range(args.runs))
    traced = "untraced" if args.no_trace else f"traced (rate={args.rate})"
    print(f"{traced}: the server crashed in {crashed} of {args.runs} runs")


if __name__ == "__main__":
    main()
