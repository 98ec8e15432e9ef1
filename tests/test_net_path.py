"""The per-request network join and the clock check, on rows laid out by hand so every
boundary is known; tests/test_perf_net.py runs the same code on real bpftrace captures of a
real Triton server."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from gpuprof.align import request_clocks
from gpuprof.align.causality import clock_domain, offset_bounds
from gpuprof.analyze import net_path

SERVER_PORT, CLIENT_PID, SERVER_PID = 8000, 100, 200


def _calls(rows):
    """(time, pid, local port, remote port, direction, bytes) -> network_events rows."""
    frame = pd.DataFrame(rows, columns=["time_ns", "pid", "local_port", "remote_port",
                                        "direction", "bytes"])
    return frame.assign(direction=frame["direction"].astype("category"))


def _request_calls(port: int, t0: int, request_bytes=500, response_bytes=300):
    """A request's TCP calls at t0+10 (client send), +20/+25 (server reads), +70 (server
    send), +80 (client read)."""
    return [(t0 + 10, CLIENT_PID, port, SERVER_PORT, "send", request_bytes),
            (t0 + 20, SERVER_PID, SERVER_PORT, port, "recv", request_bytes - 100),
            (t0 + 25, SERVER_PID, SERVER_PORT, port, "recv", 100),
            (t0 + 70, SERVER_PID, SERVER_PORT, port, "send", response_bytes),
            (t0 + 80, CLIENT_PID, port, SERVER_PORT, "recv", response_bytes)]


def _requests():
    return pd.DataFrame({"request_id": ["a", "b", "c"], "client_port": [5001, 5002, 5001],
                         "start_ns": [1000, 1000, 2000], "sent_ns": [1012, 1012, 2012],
                         "recv_ns": [1082, 1082, 2082], "end_ns": [1090, 1095, 2090]})


def _net():
    rows = _request_calls(5001, 1000) + _request_calls(5002, 1000, 600, 400)
    rows += _request_calls(5001, 2000)
    rows += [(1500, CLIENT_PID, 5001, SERVER_PORT, "send", 77),      # between requests
             (1050, 999, 6000, SERVER_PORT, "send", 50),             # another client
             (1050, CLIENT_PID, 5003, SERVER_PORT, "send", 40),      # another connection
             (1060, CLIENT_PID, 5001, SERVER_PORT, "recv", -11)]     # EAGAIN: no data
    return _calls(rows)


def test_calls_are_tied_to_the_request_on_their_connection_and_inside_its_span():
    match = net_path.match_calls(_requests(), _net(), SERVER_PORT, CLIENT_PID)
    calls = match.calls.set_index("request_id")
    assert sorted(calls.index) == ["a", "b", "c"]
    assert calls.loc["a", "client_send_bytes"] == 500
    assert calls.loc["b", "client_send_bytes"] == 600
    assert calls.loc["b", "server_recv_bytes"] == 600 and calls.loc["b", "server_recv_calls"] == 2
    assert calls.loc["c", "cs_first_ns"] == 2010 and calls.loc["c", "sr_last_ns"] == 2025
    assert match.calls_outside_requests == 1          # the send at 1500
    assert match.calls_other_traffic == 2             # pid 999, and port 5003
    assert match.requests_without_calls == 0 and match.requests_incomplete == 0
    assert match.server_pids == (SERVER_PID,)


def test_a_request_without_calls_is_counted_not_guessed():
    requests = pd.concat([_requests(), pd.DataFrame({
        "request_id": ["d"], "client_port": [5009], "start_ns": [1000], "sent_ns": [1001],
        "recv_ns": [1002], "end_ns": [1100]})], ignore_index=True)
    match = net_path.match_calls(requests, _net(), SERVER_PORT, CLIENT_PID)
    assert "d" not in set(match.calls["request_id"])
    assert match.requests_without_calls == 1


def test_segments_follow_the_first_bytes_and_add_up_to_the_client_latency():
    requests = _requests()
    match = net_path.match_calls(requests, _net(), SERVER_PORT, CLIENT_PID)
    path = net_path.network_path(requests, match.calls).set_index("request_id")
    a = path.loc["a"]
    assert (a["net_client_send_ns"], a["net_wire_in_ns"], a["net_server_ns"],
            a["net_wire_out_ns"], a["net_client_recv_ns"]) == (10, 10, 50, 10, 10)
    segments = [s for _, s in net_path.UNTRACED_PATH]
    assert (path[segments].sum(axis=1) == path["client_latency_ns"]).all()


def test_with_a_server_trace_the_server_part_splits_at_its_own_stamps():
    requests = _requests()
    match = net_path.match_calls(requests, _net(), SERVER_PORT, CLIENT_PID)
    spans = pd.DataFrame({"request_id": ["a", "b", "c"], "server_start_ns": [1022, 1022, 2022],
                          "send_start_ns": [1065, 1065, 2065]})
    path = net_path.network_path(requests, match.calls, spans).set_index("request_id")
    a = path.loc["a"]
    assert (a["net_server_read_ns"], a["net_server_stages_ns"], a["net_server_send_ns"]) == (2, 43, 5)
    assert a["net_server_ns"] == 50   # the untraced view of the same request: read + stages + send
    segments = [s for _, s in net_path.TRACED_PATH]
    assert (path[segments].sum(axis=1) == path["client_latency_ns"]).all()


def test_requests_the_server_did_not_trace_keep_their_untraced_path():
    requests = _requests()
    match = net_path.match_calls(requests, _net(), SERVER_PORT, CLIENT_PID)
    spans = pd.DataFrame({"request_id": ["a", "c"], "server_start_ns": [1022, np.nan],
                          "send_start_ns": [1065, 2065]})
    path = net_path.network_path(requests, match.calls, spans).set_index("request_id")
    assert len(path) == 3 and path["net_server_ns"].notna().all()
    assert path.loc["a", "net_server_stages_ns"] == 43
    # b untraced, c traced without its receive stamp: no split, never a made-up number
    assert path.loc[["b", "c"], net_path.SERVER_SPLIT].isna().all().all()


def test_the_summary_is_numpy_linear_percentiles_of_each_segment():
    rng = np.random.default_rng(3)
    frame = pd.DataFrame({"x_ns": rng.integers(0, 10_000, 997), "y_ns": rng.normal(50, 9, 997)})
    table = net_path.segment_summary(frame, ["y_ns", "x_ns"]).set_index("segment")
    assert list(table.index) == ["y_ns", "x_ns"]
    for col in ("x_ns", "y_ns"):
        for q in (50, 90, 95, 97, 99, 99.9):
            assert table.loc[col, f"p{q:g}"] == pytest.approx(
                np.percentile(frame[col], q, method="linear"))
        assert table.loc[col, "count"] == 997


def test_causality_pins_a_shared_clock_and_reports_how_tightly():
    bounds = offset_bounds(after=[np.array([-5.0, -3.0, np.nan])], before=[np.array([7.0, 9.0])])
    assert (bounds.lower_ns, bounds.upper_ns, bounds.pairs) == (-3.0, 7.0, 4)
    clock = clock_domain("ebpf", bounds, "pairs")
    assert clock.offset_ns == 0 and clock.error_ns == 7 and "verified" in clock.method


def test_causality_measures_an_offset_when_the_clocks_differ_and_flags_contradictions():
    shifted = clock_domain("x", offset_bounds([np.array([100.0])], [np.array([140.0])]), "p")
    assert (shifted.offset_ns, shifted.error_ns) == (120, 20)
    broken = clock_domain("x", offset_bounds([np.array([50.0])], [np.array([10.0])]), "p")
    assert broken.error_ns == -1 and "INCONSISTENT" in broken.method


def test_ebpf_against_the_client_uses_the_four_orderings():
    match = net_path.match_calls(_requests(), _net(), SERVER_PORT, CLIENT_PID)
    frame = _requests().merge(match.calls, on="request_id")
    clock = request_clocks.ebpf_to_client(frame)
    # start - cs_first = -10 (lower); sent - cs_last = 2, recv - cr_first = 2, end - cr_last >= 10
    assert clock.offset_ns == 0 and clock.error_ns == 10


def test_requests_of_one_execution_share_its_compute():
    from gpuprof.analyze.executions import executions

    spans = pd.DataFrame({"compute_start_ns": [10, 10, 10, 50, 10, np.nan],
                          "compute_end_ns": [40, 40, 40, 90, 41, np.nan]})
    out = executions(spans, pd.Series([1, 2, 1, 4, 1, 1]))
    assert out["execution_id"].iloc[:3].nunique() == 1
    # same start, other end: another execution (another model instance)
    assert out["execution_id"].iloc[4] not in set(out["execution_id"].iloc[:4])
    assert list(out["execution_requests"].iloc[:5]) == [3, 3, 3, 1, 1]
    assert list(out["execution_rows"].iloc[:5]) == [4, 4, 4, 4, 1]
    # rows / all rows of the execution, not 1 / requests
    assert list(out["compute_share"].iloc[:5]) == [0.25, 0.5, 0.25, 1.0, 1.0]
    assert pd.isna(out["execution_id"].iloc[5]) and pd.isna(out["compute_share"].iloc[5])


def test_a_capture_without_calls_matches_nothing():
    match = net_path.match_calls(_requests(), _net().iloc[0:0], SERVER_PORT, CLIENT_PID)
    assert match.calls.empty and match.requests_without_calls == 3
    path = net_path.network_path(_requests(), match.calls)
    assert path.empty
    frame, segments = net_path.whole_path(path, None)
    assert net_path.segment_summary(frame, segments).empty


def test_a_late_response_is_given_to_its_request_not_the_next():
    """Request a's response send is stamped after the client started b on the same connection
    (the server thread was descheduled): it answers a, so it is a's, not b's."""
    requests = pd.DataFrame({"request_id": ["a", "b"], "client_port": [5001, 5001],
                             "start_ns": [1000, 1100], "sent_ns": [1012, 1112],
                             "recv_ns": [1090, 1190], "end_ns": [1095, 1195]})
    rows = [r for r in _request_calls(5001, 1100)]
    rows += [(1010, CLIENT_PID, 5001, SERVER_PORT, "send", 500),
             (1020, SERVER_PID, SERVER_PORT, 5001, "recv", 500),
             (1105, SERVER_PID, SERVER_PORT, 5001, "send", 300)]   # a's, late
    match = net_path.match_calls(requests, _calls(rows), SERVER_PORT, CLIENT_PID)
    calls = match.calls.set_index("request_id")
    assert match.late_sends == 1
    assert calls.loc["b", "server_send_calls"] == 1 and calls.loc["b", "ss_first_ns"] == 1170
    assert calls.loc["a", "server_send_calls"] == 1 and calls.loc["a", "ss_first_ns"] == 1105
    assert match.requests_incomplete == 1          # a: no client receive of its own


def test_a_send_stamped_after_its_client_ended_keeps_the_request_on_the_path():
    """Seen in CI: the server's send call returned after the client had read the response and
    ended (loopback delivers inside the call; the sender was descheduled before returning).
    The request keeps its path, with a negative segment, counted, never clipped."""
    requests = pd.DataFrame({"request_id": ["a", "b"], "client_port": [5001, 5001],
                             "start_ns": [1000, 1200], "sent_ns": [1012, 1212],
                             "recv_ns": [1090, 1290], "end_ns": [1095, 1295]})
    rows = [(1010, CLIENT_PID, 5001, SERVER_PORT, "send", 500),
            (1020, SERVER_PID, SERVER_PORT, 5001, "recv", 500),
            (1088, CLIENT_PID, 5001, SERVER_PORT, "recv", 300),
            (1150, SERVER_PID, SERVER_PORT, 5001, "send", 300),   # a's, stamped late
            *_request_calls(5001, 1200)]
    match = net_path.match_calls(requests, _calls(rows), SERVER_PORT, CLIENT_PID)
    assert match.requests_incomplete == 0 and match.late_sends == 1
    path = net_path.network_path(requests, match.calls).set_index("request_id")
    assert path.loc["a", "net_server_ns"] == 1150 - 1020
    assert path.loc["a", "net_wire_out_ns"] == 1088 - 1150        # negative, kept
    assert net_path.negative_segments(path.reset_index()) == 1
    assert (path[["net_client_send_ns", "net_wire_in_ns", "net_server_ns", "net_wire_out_ns",
                  "net_client_recv_ns"]].sum(axis=1) == path["client_latency_ns"]).all()


def test_perf_path_notes_say_a_runs_capture_is_partial():
    """perf --net's path section names the runs a full map could not keep, as gpuprof net does."""
    from gpuprof.model.net_facts import NetCaptureFacts
    from gpuprof.render.request_path import _match_notes

    match = net_path.NetMatch(calls=pd.DataFrame(), requests_without_calls=0,
                              requests_incomplete=2, calls_outside_requests=0,
                              calls_other_traffic=0, server_pids=(7,))
    facts = NetCaptureFacts(program="tracepoint", events=100, lost_runs=1234)
    notes = " | ".join(_match_notes(match, 10, 0, facts))
    assert "PARTIAL: the capture had no room for 1,234 runs of calls" in notes
    assert "2 with some of the four groups missing" in notes
    assert "PARTIAL" not in " ".join(_match_notes(match, 10, 0, NetCaptureFacts(program="x")))
