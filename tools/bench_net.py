#!/usr/bin/env python3
"""Benchmark: TCP events per second that gpuprof's eBPF capture sustains without loss.

A generator process drives a loopback TCP connection at a paced rate (each round trip is four
events: client send, server recv, server send, client recv) while ``NetCapture`` records it
with the default program. For each target rate the table shows the events per second the
capture wrote, the events bpftrace reported lost, and whether every generated event was
written (the generator counts its own calls). Run as root:

    python tools/bench_net.py --seconds 3 --rates 5000 10000 20000 40000 80000 max

Not a test: timings are only measured here (docs/BENCHMARKS.md records them).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gpuprof.capture.net import NetCapture  # noqa: E402

PAYLOAD = b"x" * 64
BATCH = 50  # round trips between pacing checks


def generate(port: int, rate: float, seconds: float) -> None:
    """The generator process: a listener on ``port`` and one connection to it, paced at
    ``rate`` events/s (0: as fast as it goes). Prints the round trips it made as JSON."""
    listener = socket.create_server(("127.0.0.1", port))
    client = socket.create_connection(("127.0.0.1", port))
    server, _ = listener.accept()
    for sock in (client, server):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    trips, start = 0, time.monotonic()
    per_trip = 4 / rate if rate else 0.0
    while (now := time.monotonic()) - start < seconds:
        if per_trip and trips * per_trip > now - start:
            time.sleep(min(0.001, trips * per_trip - (now - start)))
            continue
        for _ in range(BATCH):
            client.sendall(PAYLOAD)
            _recv_exactly(server, len(PAYLOAD))
            server.sendall(PAYLOAD)
            _recv_exactly(client, len(PAYLOAD))
        trips += BATCH
    print(json.dumps({"trips": trips, "seconds": time.monotonic() - start}))


def _recv_exactly(sock: socket.socket, size: int) -> None:
    got = 0
    while got < size:
        got += len(sock.recv(size - got))


def measure(rate: float, seconds: float, out_dir: Path) -> dict:
    port = _free_port()
    out = out_dir / f"bench-{int(rate)}.txt"
    with NetCapture(ports=[port], out=out) as cap:
        done = subprocess.run([sys.executable, __file__, "--generate", str(port), str(rate), str(seconds)],
                              capture_output=True, text=True, check=True)
    gen = json.loads(done.stdout)
    result = cap.result
    generated = gen["trips"] * 4
    return {"target_events_per_s": rate or "max", "generated_events": generated,
            "written_events": result.events_written, "lost_events": result.lost_events,
            "events_per_s": round(result.events_written / gen["seconds"]),
            "complete": result.events_written == generated and result.lost_events == 0,
            "synced": result.synced}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def main() -> int:
    if len(sys.argv) == 5 and sys.argv[1] == "--generate":
        generate(int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--rates", nargs="+", default=["5000", "10000", "20000", "40000", "max"],
                        help="target events per second ('max': unpaced)")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("Error: run as root (bpftrace).", file=sys.stderr)
        return 2
    rows = []
    with tempfile.TemporaryDirectory(prefix="gpuprof-bench-net-") as tmp:
        for rate in args.rates:
            row = measure(0.0 if rate == "max" else float(rate), args.seconds, Path(tmp))
            rows.append(row)
            print(json.dumps(row), flush=True)
    sustained = [r["events_per_s"] for r in rows if r["complete"]]
    print(f"sustained without loss: {max(sustained):,} events/s" if sustained
          else "no rate was captured without loss")
    return 0


if __name__ == "__main__":
    sys.exit(main())
