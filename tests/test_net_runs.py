"""The runs program (gpuprof/bpf/net_runs.bt) against the per-call program, real bpftrace on
real loopback traffic (root + bpftrace; marker ``bpf``).

Both programs watch the same connections at once; the per-call capture, grouped into runs
of same-direction calls per socket in plain Python here, is the independent side: the runs
program, which keeps finished runs in kernel maps and prints them every 100 ms, must hold
the same runs (direction, ports, first and last call times, calls, bytes), print those that
ended just before the stop, and count, never drop silently, the runs it had no room for.
"""

from __future__ import annotations

import socket
import threading
import time
from collections import defaultdict

import pytest

from gpuprof.capture.net import NetCapture
from gpuprof.ingest.net_capture import read_net_capture

pytestmark = pytest.mark.bpf

# the two programs read nsecs in their own BPF programs on the same tracepoint call, and a
# program can be preempted between them (seen: 220 µs on the loaded 2-core machine); runs
# are paired in order per socket and direction, so the bound only has to catch a wrong field
SAME_CALL_NS = 2_000_000
REQUEST, REPLY = 3 * 4096, 2 * 1000


def serve(listener: socket.socket) -> None:
    """Per connection: read REQUEST bytes (in as many recv calls as it takes), answer REPLY
    bytes in two sends; until the client closes."""
    while True:
        try:
            conn, _ = listener.accept()
        except OSError:
            return
        threading.Thread(target=_answer, args=(conn,), daemon=True).start()


def _answer(conn: socket.socket) -> None:
    with conn:
        while _read(conn, REQUEST):
            conn.sendall(b"r" * (REPLY // 2))
            conn.sendall(b"r" * (REPLY // 2))


def _read(conn: socket.socket, size: int) -> bool:
    while size > 0:
        chunk = conn.recv(min(size, 1500))
        if not chunk:
            return False
        size -= len(chunk)
    return True


def exchange(sock: socket.socket) -> None:
    for _ in range(3):
        sock.sendall(b"q" * (REQUEST // 3))
    _read(sock, REPLY)


@pytest.fixture
def server():
    listener = socket.create_server(("127.0.0.1", 0))
    threading.Thread(target=serve, args=(listener,), daemon=True).start()
    yield listener.getsockname()[1]
    listener.close()


def traffic(port: int, connections: int, exchanges: int, pause_s: float) -> None:
    socks = [socket.create_connection(("127.0.0.1", port)) for _ in range(connections)]
    for _ in range(exchanges):
        for sock in socks:
            exchange(sock)
        time.sleep(pause_s)
    for sock in socks:
        sock.close()
    time.sleep(0.05)  # the server's ends close too


def runs_of_calls(events) -> list[tuple]:
    """Runs of same-direction calls per socket, from one row per call: (direction, local port,
    remote port, first ns, last ns, calls, bytes), sorted."""
    runs: dict[tuple, list] = defaultdict(list)
    for row in events.sort_values("time_ns", kind="stable").itertuples(index=False):
        own = runs[(row.local_port, row.remote_port)]
        if own and own[-1][0] == row.direction:
            last = own[-1]
            own[-1] = (last[0], last[1], row.time_ns, last[3] + 1, last[4] + row.bytes)
        else:
            own.append((row.direction, row.time_ns, row.time_ns, 1, row.bytes))
    return sorted((d, lp, rp, first, last, calls, size) for (lp, rp), found in runs.items()
                  for d, first, last, calls, size in found)


def runs_kept(events) -> list[tuple]:
    return sorted(zip(events["direction"], events["local_port"], events["remote_port"],
                      events["time_ns"], events["last_ns"], events["calls"], events["bytes"],
                      strict=True))


def both_captures(tmp_path, port: int, run_slots: int | None = None):
    """(per-call capture, runs capture) of the traffic run inside the with-block's caller."""
    calls = NetCapture(ports=[port], out=tmp_path / "calls.txt")
    kept = NetCapture(ports=[port], out=tmp_path / "runs.txt", runs=True,
                      **({"run_slots": run_slots} if run_slots else {}))
    return calls, kept


def same_run(got: tuple, want: tuple) -> bool:
    return ((got[0], got[1], got[2], got[5], got[6]) == (want[0], want[1], want[2], want[5], want[6])
            and abs(got[3] - want[3]) < SAME_CALL_NS and abs(got[4] - want[4]) < SAME_CALL_NS)


def assert_same_runs(expected: list[tuple], found: list[tuple]) -> None:
    assert len(found) == len(expected)
    for want, got in zip(expected, found, strict=True):
        assert same_run(got, want), (got, want)


def test_runs_program_keeps_the_runs_of_the_per_call_program(tmp_path, server):
    """Four connections, 60 exchanges each over ~0.6 s (so the 100 ms tick switches maps
    under the traffic): every run, the same in both."""
    calls, kept = both_captures(tmp_path, server)
    with calls, kept:
        traffic(server, connections=4, exchanges=60, pause_s=0.01)
    assert calls.result.lost_events == kept.result.lost_events == 0
    per_call, _ = read_net_capture(calls.result.path)
    runs, facts = read_net_capture(kept.result.path)
    expected = runs_of_calls(per_call)
    assert len(expected) == 4 * 60 * 2 * 2   # per exchange: a send and a recv run a socket, 2 sockets
    assert facts.lost_runs == 0 and not facts.partial and facts.unparsed_lines == 0
    assert facts.events == len(per_call)
    assert_same_runs(expected, runs_kept(runs))


def test_runs_ended_just_before_the_stop_are_in_the_file_before_its_marker(tmp_path, server):
    """The stop marker prints both maps: a connection closed right before stop() is there,
    ahead of the '# sync' line (not left to a later tick or lost with bpftrace's exit)."""
    calls, kept = both_captures(tmp_path, server)
    with calls, kept:
        traffic(server, connections=1, exchanges=2, pause_s=0)
    assert kept.result.synced
    text = kept.result.path.read_text()
    before = text[:text.index("# sync ")]
    before_file = tmp_path / "before.txt"
    before_file.write_text(before)
    per_call, _ = read_net_capture(calls.result.path)
    assert_same_runs(runs_of_calls(per_call), runs_kept(read_net_capture(before_file)[0]))


def test_runs_without_room_are_counted_lost(tmp_path, server):
    """Maps of 4 runs and ~100 runs in a burst: the runs kept plus the runs counted lost are
    the runs the per-call program saw, and the capture is marked partial."""
    calls, kept = both_captures(tmp_path, server, run_slots=4)
    with calls, kept:
        traffic(server, connections=2, exchanges=6, pause_s=0)
    per_call, _ = read_net_capture(calls.result.path)
    runs, facts = read_net_capture(kept.result.path)
    expected = runs_of_calls(per_call)
    assert facts.lost_runs > 0 and facts.partial
    assert kept.result.lost_runs == facts.lost_runs
    assert len(runs) + facts.lost_runs == len(expected)
    assert all(any(same_run(got, want) for want in expected) for got in runs_kept(runs))
