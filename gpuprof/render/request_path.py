"""Report sections for the per-request path (``gpuprof perf --net``): where each request's
time goes from the client's socket through the server's stages and back, with the clocks'
offsets and error bounds, and a waterfall of the slowest requests (text and PNG)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ..analyze.stats import DEFAULT_PERCENTILES, PERCENTILE_METHOD, percentile_label
from ..units import NS_PER_US as US
from .net_report import lost_runs_text
from .report import Section

# segment -> (its name, where it ends in the terminal table: short, so cells stay whole,
# and the boundary the seed's timeline names)
SEGMENTS = {
    "to_server_ns": ("to server", "HTTP_RECV_START", "HTTP_RECV_START"),  # without eBPF
    "net_client_send_ns": ("client send", "1st send() done", "CLIENT_SEND"),
    "net_wire_in_ns": ("wire in", "server 1st recv()", "SERVER_RECV"),
    "net_server_read_ns": ("server read", "HTTP_RECV_START", "HTTP_RECV_START"),
    "server_receive_ns": ("server receive", "QUEUE_START", "QUEUE_START"),
    "queue_ns": ("queue", "COMPUTE_START", "COMPUTE_START"),
    "compute_input_ns": ("compute input", "COMPUTE_INPUT_END", "COMPUTE_INPUT_END"),
    "compute_infer_ns": ("compute infer", "COMPUTE_OUTPUT_START", "COMPUTE_OUTPUT_START"),
    "server_output_ns": ("server output", "send starts", "SEND_START"),
    "net_server_ns": ("server", "server 1st send()", "SERVER_SEND"),
    "net_server_stages_ns": ("server stages", "send starts", "SEND_START"),
    "net_server_send_ns": ("server send", "server 1st send()", "SERVER_SEND"),
    "net_wire_out_ns": ("wire out", "client 1st recv()", "CLIENT_RECV"),
    "net_client_recv_ns": ("client recv", "client end", "CLIENT_END"),
    "from_server_ns": ("from server", "client end", "CLIENT_END"),   # without eBPF
}
LABELS = {segment: name for segment, (name, _, _) in SEGMENTS.items()}
WHERE = {segment: until for segment, (_, until, _) in SEGMENTS.items()}
ENDS_AT = {segment: boundary for segment, (_, _, boundary) in SEGMENTS.items()}
# one character per segment in the text waterfall, in path order
GLYPHS = "sw>rqiIo<W.c"
BAR_WIDTH = 64


def path_sections(frame: pd.DataFrame, segments: list[str], match, clocks: dict,
                  capture_facts, slowest_n: int = 10) -> list[Section]:
    from ..analyze.net_path import negative_segments, segment_summary, slowest

    summary = segment_summary(frame, segments)
    notes = _match_notes(match, len(frame), negative_segments(frame[segments]), capture_facts)
    notes.append("each segment runs from the end of the previous one to the boundary in "
                 "'until'; send()/recv() times are when those system calls returned (eBPF)")
    return [Section("net_path", "Per-request path: client, network, server (µs)",
                    _summary_display(summary), notes=notes, data=_summary_data(summary)),
            timeline_section(frame, segments),
            Section("clocks", "Clocks, checked against the client's CLOCK_MONOTONIC",
                    clock_table(clocks), data=clock_data(clocks)),
            Section("waterfall", f"The {min(slowest_n, len(frame))} slowest requests",
                    preformatted=waterfall_lines(slowest(frame, slowest_n), segments))]


def timeline_section(frame: pd.DataFrame, segments: list[str]) -> Section:
    """The seed's Triton timeline with the network around it: each boundary's mean offset from
    the server's first receive (eBPF), and the mean gap from the previous boundary."""
    from .triton_report import ascii_timeline

    names = ["CLIENT_START"] + [ENDS_AT[s] for s in segments]
    gaps = [0.0] + [float(frame[s].mean()) for s in segments] if len(frame) else []
    offsets = list(pd.Series(gaps).cumsum())
    if offsets:
        zero = offsets[names.index("SERVER_RECV")]
        offsets = [o - zero for o in offsets]
    notes = ["mean offset of each boundary from the server's first recv() of the request "
             f"(eBPF), and the mean gap from the previous one, over {len(frame)} requests; "
             "CLIENT_SEND, SERVER_RECV, SERVER_SEND and CLIENT_RECV are when those system "
             "calls returned (eBPF), the others are Triton's and the client's own stamps"]
    return Section("net_timeline", "Timeline: client, network and server", notes=notes,
                   preformatted=ascii_timeline(names, offsets, gaps) if offsets else [])


def _summary_display(summary: pd.DataFrame) -> pd.DataFrame:
    out = pd.DataFrame({"segment": [LABELS[s] for s in summary["segment"]],
                        "until": [WHERE[s] for s in summary["segment"]],
                        "n": summary["count"].astype("int64")})
    for col in ["mean", *[percentile_label(q) for q in DEFAULT_PERCENTILES], "max"]:
        out[col] = summary[col] / US
    return out


def _summary_data(summary: pd.DataFrame) -> pd.DataFrame:
    """The rows for JSON/CSV: each segment's statistics in raw ns (mean_ns, p50_ns, ...), with
    its per-request CSV column."""
    out = pd.DataFrame({"segment": [LABELS[s] for s in summary["segment"]],
                        "column": summary["segment"].astype(str),
                        "until": [WHERE[s] for s in summary["segment"]],
                        "n": summary["count"].astype("int64")})
    for col in ["mean", *[percentile_label(q) for q in DEFAULT_PERCENTILES], "max"]:
        out[f"{col}_ns"] = summary[col].astype("float64")
    return out


def _match_notes(match, matched: int, negative: int, facts) -> list[str]:
    from ..analyze.stats import unreliable_percentiles

    weak = unreliable_percentiles(matched)
    notes = [f"{matched} requests carry all four groups of TCP calls and are on the path; "
             f"percentiles over those n (numpy '{PERCENTILE_METHOD}' interpolation)"
             + (f"; {', '.join(weak)} rest on fewer than 10 samples beyond them" if weak else ""),
             f"not matched: {match.requests_without_calls} requests with no TCP call on their "
             f"connection, {match.requests_incomplete} with some of the four groups missing, "
             f"{match.calls_outside_requests} calls on the load's connections outside any "
             f"measured request (probe, warm-up, between windows), {match.calls_other_traffic} "
             "calls of other connections on the server port"
             + (f"; {match.late_sends} server sends were stamped after their request had "
                "ended or the next had started at the client (the server thread was "
                "descheduled): each is given to the request it answered"
                if match.late_sends else "")]
    if negative:
        notes.append(f"{negative} request(s) have a segment below zero: on loopback a receiver "
                     "can return before the sender's call does (within the clock error bound)")
    notes.append(f"eBPF capture: {facts.program} program, {facts.events} TCP calls, "
                 f"{facts.lost_events} lost")
    if facts.lost_events:
        notes.append(f"bpftrace lost {facts.lost_events} events: the requests that lack calls "
                     "are counted above, never matched by guess")
    if facts.lost_runs:
        notes.append(f"PARTIAL: {lost_runs_text(facts.lost_runs)}: the requests that lack "
                     "them are counted above, never matched by guess")
    if match.server_pids:
        notes.append(f"server pid(s) seen on the connections: "
                     f"{', '.join(map(str, match.server_pids))}")
    return notes


def clock_data(clocks: dict) -> pd.DataFrame:
    """The clocks for JSON/CSV, in ns; an error bound not measured is null."""
    return pd.DataFrame([{"source": name, "offset_ns": c.offset_ns,
                          "error_bound_ns": c.error_ns if c.error_ns >= 0 else None,
                          "method": c.method} for name, c in clocks.items()])


def clock_table(clocks: dict) -> pd.DataFrame:
    rows = [{"source": name, "offset µs": c.offset_ns / US,
             "error bound µs": c.error_ns / US if c.error_ns >= 0 else float("nan"),
             "method": c.method} for name, c in clocks.items()]
    return pd.DataFrame(rows)


def waterfall_lines(rows: pd.DataFrame, segments: list[str]) -> list[str]:
    """One bar per request, time running left to right on a common scale; each segment drawn
    with its own character (legend first). Segments below zero draw nothing."""
    if rows.empty:
        return []
    scale = BAR_WIDTH / max(float(rows["client_latency_ns"].max()), 1.0)
    legend = "  ".join(f"{g}={LABELS[s]}" for g, s in zip(GLYPHS, segments))
    lines = [legend, f"scale: {BAR_WIDTH} characters = "
                     f"{rows['client_latency_ns'].max() / 1e6:.3f} ms"]
    for row in rows.itertuples(index=False):
        bar = _bar([getattr(row, s) for s in segments], scale)
        lines.append(f"{row.client_latency_ns / 1e6:8.3f} ms |{bar:<{BAR_WIDTH}}| "
                     f"{row.request_id}")
    return lines


def _bar(values: list, scale: float) -> str:
    out, edge = [], 0.0
    for glyph, value in zip(GLYPHS, values):
        end = edge + max(float(value), 0.0) * scale
        out.append(glyph * (round(end) - round(edge)))
        edge = end
    return "".join(out)


def plot_waterfall(rows: pd.DataFrame, segments: list[str], path: str | Path) -> Path:
    """The slowest requests as stacked horizontal bars (ms), one colour per segment."""
    from .plots import _figure, _save, _text

    fig = _figure((11, 1.2 + 0.38 * max(len(rows), 1)))
    ax = fig.add_subplot()
    ordered = rows.iloc[::-1]
    left = pd.Series(0.0, index=ordered.index)
    colours = matplotlib_colours(len(segments))
    for segment, colour in zip(segments, colours):
        width = ordered[segment].clip(lower=0) / 1e6
        ax.barh(range(len(ordered)), width, left=left, label=LABELS[segment], color=colour)
        left += width
    ax.set_yticks(range(len(ordered)), [_text(str(r)) for r in ordered["request_id"]], fontsize=7)
    ax.set_xlabel("ms from the client's start")
    ax.set_title("Slowest requests: client, network, server")
    ax.legend(fontsize=7, ncol=4, loc="lower right")
    return _save(fig, path)


def matplotlib_colours(n: int) -> list:
    """n distinct colours (tab20's, dark shade first): tab10 repeats after ten segments."""
    from matplotlib import colormaps

    cmap = colormaps["tab20"]
    order = list(range(0, 20, 2)) + list(range(1, 20, 2))
    return [cmap(order[i % 20]) for i in range(n)]


def kernel_section(found, clock, export_name: str, traced: int, top: int = 15) -> Section:
    """The server's GPU kernels inside each traced request's compute window, by layer."""
    per_layer = found.per_layer.head(top)
    table = pd.DataFrame({"layer": per_layer["layer"],
                          "requests": per_layer["requests"].astype("int64"),
                          "kernels": per_layer["kernels"].astype("int64"),
                          "GPU ms": per_layer["gpu_ns"] / 1e6,
                          "per request µs": per_layer["mean_per_request_ns"] / US})
    error = f"±{clock.error_ns / US:,.0f} µs" if clock.error_ns >= 0 else "unknown"
    notes = [f"{len(found.per_request)} of {traced} traced requests have kernels starting inside "
             "their compute window (COMPUTE_START to COMPUTE_OUTPUT_START); requests batched "
             "into one execution share its kernels (execution_requests)",
             "windows come from traced requests only: with a sampled trace and more than one "
             "model instance, an untraced request computing at the same time can put its "
             "kernels inside a traced window",
             f"{export_name} put on the client's clock by {clock.method}; offset "
             f"{clock.offset_ns:,} ns, error {error}: kernels nearer a window's edge than that "
             "may belong to the next or previous request",
             f"not given to any request: {found.ambiguous} kernels starting while two or more "
             f"requests computed (which one launched them is unknown), {found.outside} outside "
             "every window"]
    return Section("request_kernels", f"GPU kernels inside each request's compute, by layer "
                   f"(top {min(top, len(found.per_layer))})", table, notes=notes)
