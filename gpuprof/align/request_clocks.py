"""The clocks of a load test with eBPF and a server trace, checked against each other.

The reference clock is the client's (``time.perf_counter_ns``: CLOCK_MONOTONIC on Linux).
bpftrace's ``nsecs`` and Triton's trace ``ns`` should be the same clock on the same machine;
each is verified from the order of events every request must respect (``causality``):

- eBPF against the client: the client's first send call returns after the request started;
  its last send call returns before ``sent_ns`` (taken after ``sendall``), its first receive
  call before ``recv_ns`` (taken after the first bytes came), its last before ``end_ns``.
- Triton against eBPF: the frontend stamps HTTP_RECV_START after the server's first read of
  the request returned; the kernel returns the server's first send call after Triton stamped
  the send start.

Triton's offset to the client is found through eBPF, so its error bound adds both.
"""

from __future__ import annotations

import pandas as pd

from ..model import ClockDomain
from .causality import clock_domain, offset_bounds


def ebpf_to_client(frame: pd.DataFrame) -> ClockDomain:
    """``frame``: requests with start/sent/recv/end_ns and the cs/cr first/last call times."""
    bounds = offset_bounds(
        after=[frame["start_ns"] - frame["cs_first_ns"]],
        before=[frame["sent_ns"] - frame["cs_last_ns"], frame["recv_ns"] - frame["cr_first_ns"],
                frame["end_ns"] - frame["cr_last_ns"]])
    return clock_domain("ebpf", bounds, "client/eBPF pairs")


def triton_to_ebpf(frame: pd.DataFrame) -> ClockDomain:
    """``frame``: requests with the server's sr/ss first call times and the trace's
    server_start_ns (HTTP_RECV_START) and send_start_ns."""
    bounds = offset_bounds(after=[frame["sr_first_ns"] - frame["server_start_ns"]],
                           before=[frame["ss_first_ns"] - frame["send_start_ns"]])
    return clock_domain("triton", bounds, "eBPF/Triton pairs")


def triton_to_client(ebpf: ClockDomain, triton_vs_ebpf: ClockDomain) -> ClockDomain:
    """Triton on the client clock through eBPF: offsets add, and so do error bounds."""
    unknown = ebpf.error_ns < 0 or triton_vs_ebpf.error_ns < 0
    return ClockDomain("triton", ebpf.offset_ns + triton_vs_ebpf.offset_ns,
                       f"{triton_vs_ebpf.method}, via eBPF",
                       -1 if unknown else ebpf.error_ns + triton_vs_ebpf.error_ns)


def client_clock() -> ClockDomain:
    return ClockDomain("client", 0, "reference: time.perf_counter_ns (CLOCK_MONOTONIC)", 0)
