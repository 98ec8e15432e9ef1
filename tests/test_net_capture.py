"""Real bpftrace against real loopback traffic (root + bpftrace; marker ``bpf``).

A Python HTTP server on a free 127.0.0.1 port answers a raw-socket client that counts every
byte it sends and receives and notes time.monotonic_ns() around each request: the capture
must hold each request's bytes, on both ends of the connection, inside those times.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from gpuprof import bpf
from gpuprof.capture.net import NetCapture, scan_capture
from gpuprof.capture.net_preflight import choose_program, system_facts
from gpuprof.errors import BadInputError
from gpuprof.ingest.net_capture import read_net_capture

from .conftest import REPO

pytestmark = pytest.mark.bpf


class Handler(BaseHTTPRequestHandler):
    """GET /bytes/N answers N bytes; POST reads its body and answers its length."""

    protocol_version = "HTTP/1.0"  # one request per connection, closed by the server

    def do_GET(self):
        size = int(self.path.rsplit("/", 1)[1])
        self._answer(b"x" * size)

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self._answer(str(len(body)).encode())

    def _answer(self, body: bytes):
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def http_server():
    servers = []

    def start() -> int:
        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return server.server_address[1]
    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


@dataclass
class Exchange:
    client_port: int
    sent: int
    received: int
    start_ns: int
    end_ns: int


def request(port: int, method: str = "GET", path: str = "/bytes/100", body: bytes = b"") -> Exchange:
    """One HTTP request over a raw socket, counting the bytes that went each way."""
    start = time.monotonic_ns()
    with socket.create_connection(("127.0.0.1", port)) as sock:
        client_port = sock.getsockname()[1]
        data = (f"{method} {path} HTTP/1.1\r\nHost: test\r\nContent-Length: {len(body)}\r\n"
                "Connection: close\r\n\r\n").encode() + body
        sock.sendall(data)
        received = 0
        while chunk := sock.recv(65536):
            received += len(chunk)
    return Exchange(client_port, len(data), received, start, time.monotonic_ns())


def traffic_of(events, local_port: int, remote_port: int) -> tuple[int, int, list[int]]:
    """(bytes sent, bytes received, times) of one end of one connection."""
    mine = events[(events["local_port"] == local_port) & (events["remote_port"] == remote_port)]
    sent = int(mine.loc[mine["direction"] == "send", "bytes"].sum())
    received = int(mine.loc[mine["direction"] == "recv", "bytes"].sum())
    return sent, received, mine["time_ns"].tolist()


def test_this_machine_runs_the_tracepoint_program():
    facts = system_facts()
    assert facts.tracepoints and facts.btf and facts.tracefs is not None
    assert choose_program("auto", facts) in ("tracepoint", "kprobe")


def test_every_request_bytes_both_ends_and_times(tmp_path, http_server):
    port = http_server()
    sizes = [0, 1, 100, 4096, 65536, 1_000_000, 3_333_333]
    with NetCapture(ports=[port], out=tmp_path / "net.txt") as cap:
        exchanges = [request(port, "GET", f"/bytes/{n}") for n in sizes]
        exchanges += [request(port, "POST", "/upload", b"y" * n) for n in (10, 200_000, 2_500_000)]
    result = cap.result
    assert result is not None and result.program == "tracepoint"
    assert result.lost_events == 0, "bpftrace lost events: byte counts cannot be compared"
    events, facts = read_net_capture(result.path)
    assert facts.events == result.events_written == len(events) > 0
    assert facts.start_monotonic_ns == result.started_monotonic_ns
    assert result.started_monotonic_ns < exchanges[0].start_ns  # attached before start() returned
    for ex in exchanges:
        client = traffic_of(events, ex.client_port, port)
        server = traffic_of(events, port, ex.client_port)
        assert client[:2] == (ex.sent, ex.received)            # the client's own socket
        assert server[:2] == (ex.received, ex.sent)            # the server's end of it
        assert all(ex.start_ns <= t <= ex.end_ns for t in client[2] + server[2])
    mine = events[events["pid"] == os.getpid()]
    assert len(mine) == len(events)  # client and server threads both live in this process
    assert set(events["tid"]) > {threading.get_native_id()}  # server threads are other tids


def test_port_filter_excludes_other_traffic(tmp_path, http_server):
    watched, other = http_server(), http_server()
    with NetCapture(ports=[watched], out=tmp_path / "net.txt") as cap:
        seen = [request(watched) for _ in range(5)]
        hidden = [request(other) for _ in range(5)]
    events, _ = read_net_capture(cap.result.path)
    assert not ((events["local_port"] == other) | (events["remote_port"] == other)).any()
    assert ((events["local_port"] == watched) | (events["remote_port"] == watched)).all()
    # Connections are told apart by both ends: Linux hands the same ephemeral client port to
    # connections with different servers, so a hidden request may share a watched one's port.
    pairs = set(zip(events["local_port"], events["remote_port"]))
    assert {(e.client_port, watched) for e in seen} <= pairs
    assert not {(e.client_port, other) for e in hidden} & pairs


def test_pid_filter_excludes_other_processes(tmp_path, http_server):
    port = http_server()
    code = ("import socket,sys\n"
            "for _ in range(5):\n"
            "    s = socket.create_connection(('127.0.0.1', int(sys.argv[1])))\n"
            "    s.sendall(b'GET /bytes/50 HTTP/1.1\\r\\nHost: t\\r\\n\\r\\n')\n"
            "    while s.recv(65536): pass\n"
            "    s.close()\n")
    with NetCapture(ports=[port], pids=[os.getpid()], out=tmp_path / "net.txt") as cap:
        child = subprocess.run([sys.executable, "-c", code, str(port)], timeout=60)
        request(port)
    assert child.returncode == 0
    events, facts = read_net_capture(cap.result.path)
    assert facts.pids == [os.getpid()]
    assert set(events["pid"]) == {os.getpid()}
    # the child's 5 connections reached our server: the server's end is ours, the child's not
    server_end = events[events["local_port"] == port]
    client_end = events[events["remote_port"] == port]
    assert server_end["remote_port"].nunique() == 6
    assert client_end["local_port"].nunique() == 1


def test_lost_events_are_counted(tmp_path, http_server):
    """One page of ring buffer per CPU and a burst of tiny sends: bpftrace must lose events
    and say so; the capture, the parser and the report count the same number."""
    port = http_server()
    with NetCapture(ports=[port], out=tmp_path / "net.txt", buffer_pages=1) as cap:
        with socket.create_connection(("127.0.0.1", port)) as sock:
            sock.sendall(b"POST /x HTTP/1.1\r\nHost: t\r\nContent-Length: 200000\r\n\r\n")
            for _ in range(200_000):
                sock.send(b"z")
            while sock.recv(65536):
                pass
    result = cap.result
    if result.lost_events == 0:
        pytest.skip("bpftrace kept up with the burst here: nothing was lost to count")
    lines = cap.result.path.read_text().splitlines()
    by_hand = sum(int(line.split()[1]) for line in lines if line.startswith("Lost "))
    events, facts = read_net_capture(result.path)
    assert result.lost_events == facts.lost_events == by_hand > 0
    assert result.events_written == facts.events == len(events)


def test_kprobe_program_is_refused_where_the_kernel_has_none(tmp_path):
    if system_facts().kprobes:
        pytest.skip("this kernel has kprobes: the kprobe program can run")
    with pytest.raises(BadInputError, match="no kprobes"):
        NetCapture(ports=[1], out=tmp_path / "net.txt", program="kprobe").start()
    assert not (tmp_path / "net.txt").exists()


@pytest.mark.parametrize("name", sorted(bpf.PROGRAMS))
def test_shipped_programs_compile(tmp_path, name):
    """bpftrace compiles both programs to BPF (a dry run: nothing is attached), so the kprobe
    program is checked even on a kernel without kprobes."""
    done = subprocess.run(["bpftrace", "--emit-elf", str(tmp_path / "prog.elf"), str(bpf.program_path(name)),
                           *bpf.program_args([1], [8000])], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "prog.elf").stat().st_size > 0


# -- gpuprof net as a user runs it -------------------------------------------------------------

def _gpuprof_net(tmp_path: Path, port: int) -> tuple[subprocess.Popen, Path]:
    out = tmp_path / "cli.txt"
    cmd = [sys.executable, "-m", "gpuprof", "net", "--port", str(port), "-o", str(out)]
    # SIGINT as a terminal gives it (a background test runner may leave it ignored)
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path,
                            env=os.environ | {"PYTHONPATH": str(REPO)},
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        if out.exists() and any(line.startswith("TIME ") for line in out.read_text().splitlines()):
            return proc, out
        time.sleep(0.05)
    proc.kill()
    pytest.fail(f"gpuprof net did not attach: {proc.communicate()[1][-2000:]}")


def _bpftrace_with_port(port: int) -> list[int]:
    """Live bpftrace processes whose arguments hold ``port`` (only the capture under test)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            args = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if args and args[0].endswith(b"bpftrace") and str(port).encode() in args:
            found.append(int(entry.name))
    return found


def _gone(port: int, timeout_s: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while _bpftrace_with_port(port) and time.monotonic() < deadline:
        time.sleep(0.05)
    return not _bpftrace_with_port(port)


def test_ctrl_c_keeps_the_capture_and_leaves_no_bpftrace(tmp_path, http_server):
    port = http_server()
    proc, out = _gpuprof_net(tmp_path, port)
    exchanges = [request(port) for _ in range(3)]
    time.sleep(0.3)  # let the live table catch up
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 0, stderr
    assert "Traceback" not in stderr and "Stopped by Ctrl-C" in stderr
    assert _gone(port)
    events, facts = read_net_capture(out)
    assert facts.truncated_lines == 0 and len(events) == scan_capture(out).events
    assert {e.client_port for e in exchanges} <= set(events["local_port"])
    live = [line for line in stdout.splitlines() if bpf.EVENT_LINE.match(line)]
    assert len(live) == len(events)                      # every event was printed live
    assert "Traffic per connection" in stdout and f"127.0.0.1:{exchanges[0].client_port} ->" in stdout


def test_killed_gpuprof_takes_bpftrace_with_it(tmp_path, http_server):
    port = http_server()
    proc, out = _gpuprof_net(tmp_path, port)
    assert _bpftrace_with_port(port)
    request(port)
    time.sleep(0.2)
    proc.kill()  # SIGKILL: no handler runs; the parent-death signal must end bpftrace
    proc.communicate(timeout=30)
    assert _gone(port)
    events, _ = read_net_capture(out)  # what was captured is kept and readable
    assert len(events) > 0


# -- the real Triton server ------------------------------------------------------------------

def _keep_alive_requests(port: int, paths: list[str]) -> tuple[int, int, int, int, int]:
    """GETs on one keep-alive connection, each answer read exactly by its Content-Length:
    (client port, bytes sent, bytes received, start ns, end ns)."""
    start = time.monotonic_ns()
    sent = received = 0
    with socket.create_connection(("127.0.0.1", port)) as sock:
        reader = sock.makefile("rb")
        for path in paths:
            data = f"GET {path} HTTP/1.1\r\nHost: test\r\n\r\n".encode()
            sock.sendall(data)
            sent += len(data)
            length = 0
            while (line := reader.readline()) not in (b"\r\n", b""):
                received += len(line)
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            received += 2 + len(reader.read(length))
        client_port = sock.getsockname()[1]
    return client_port, sent, received, start, time.monotonic_ns()


@pytest.mark.triton
def test_triton_server_traffic_bytes_match(tmp_path, cls_triton_server):
    """tritonserver's own threads, filtered by its pid and ours: every byte of a keep-alive
    HTTP exchange appears on both ends, inside the client's times."""
    server = cls_triton_server
    port = server.http_port
    paths = ["/v2/health/ready", f"/v2/models/{server.model_name}", f"/v2/models/{server.model_name}/config",
             "/v2"] * 5
    with NetCapture(ports=[port], pids=[server.pid, os.getpid()], out=tmp_path / "net.txt") as cap:
        client_port, sent, received, start, end = _keep_alive_requests(port, paths)
    assert cap.result.lost_events == 0 and cap.result.synced
    events, _ = read_net_capture(cap.result.path)
    client = traffic_of(events, client_port, port)
    server_end = traffic_of(events, port, client_port)
    assert client[:2] == (sent, received)
    assert server_end[:2] == (received, sent)
    assert all(start <= t <= end for t in client[2] + server_end[2])
    server_rows = events[events["local_port"] == port]
    assert set(server_rows["pid"]) == {server.pid}  # the server's threads report its pid


def test_cli_duration_capture_in_process(tmp_path, http_server, capsys):
    """`gpuprof net --duration` ends by itself and reports what it captured."""
    from gpuprof.cli.main import main

    port = http_server()
    stop = threading.Event()
    exchanges: list[Exchange] = []

    def traffic():
        while not stop.is_set():
            exchanges.append(request(port))
            time.sleep(0.05)
    worker = threading.Thread(target=traffic)
    worker.start()
    try:
        code = main(["net", "--port", str(port), "--duration", "1.5", "-q", "-o", str(tmp_path / "d.txt")])
    finally:
        stop.set()
        worker.join()
    captured = capsys.readouterr()
    assert code == 0, captured.err
    events, facts = read_net_capture(tmp_path / "d.txt")
    assert len(events) > 0 and facts.lost_events == 0
    assert not [line for line in captured.out.splitlines() if bpf.EVENT_LINE.match(line)]  # -q
    assert f"Events: {len(events):,}" in captured.out and "Capture kept in" in captured.err
