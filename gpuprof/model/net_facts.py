"""What is known about one bpftrace network capture besides its events: the layout and program,
the kernel-side filters, lost and dropped lines. Filled by ``ingest/net_capture.py``, shown by
``render/net_report.py``; here so that render needs no ingest."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class NetCaptureFacts:
    layout: str = ""                # "gpuprof" or "seed"
    program: str = "unknown"        # "tracepoint" / "kprobe" (gpuprof's header), else unknown
    clock: str = ""
    start_monotonic_ns: int = -1    # bpftrace's nsecs once attached (gpuprof layout)
    start_wall: str = ""
    pids: list[int] = field(default_factory=list)    # kernel-side filters the capture used
    ports: list[int] = field(default_factory=list)
    events: int = 0
    lost_events: int = 0
    lost_runs: int = 0              # runs the runs program had no map room for (whole requests' calls)
    truncated_lines: int = 0
    unparsed_lines: int = 0
    unparsed_example: str = ""      # one line that was neither an event nor a known message

    @property
    def partial(self) -> bool:
        return self.lost_events > 0 or self.lost_runs > 0 or self.truncated_lines > 0
