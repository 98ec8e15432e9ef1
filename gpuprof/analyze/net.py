"""Per-connection traffic from ``network_events``, in raw units (calls, bytes, ns).

A connection here is one socket as one process saw it: (pid, comm, local and remote
endpoint). A loopback connection therefore shows twice, once from each end, and the two rows
check each other: what one end sent the other received.
"""

from __future__ import annotations

import pandas as pd

CONNECTION = ["pid", "comm", "local_addr", "local_port", "remote_addr", "remote_port"]
TRAFFIC_COLUMNS = [*CONNECTION, "sends", "recvs", "bytes_sent", "bytes_received",
                   "first_ns", "last_ns"]


def connection_traffic(events: pd.DataFrame) -> pd.DataFrame:
    """One row per connection, in the order connections first appear: calls and bytes each
    way and the first/last event time. Bytes and times are NA where the capture lacks them
    (the seed layout's -1)."""
    if events.empty:
        return pd.DataFrame({c: pd.Series(dtype="int64") for c in TRAFFIC_COLUMNS})
    send = (events["direction"] == "send").to_numpy()
    nbytes = events["bytes"].to_numpy()
    frame = events[CONNECTION].assign(
        sends=send, recvs=~send, bytes_sent=nbytes * send, bytes_received=nbytes * ~send,
        no_bytes=nbytes < 0, first_ns=events["time_ns"], last_ns=events["time_ns"],
        no_time=events["time_ns"].to_numpy() < 0)
    grouped = frame.groupby(CONNECTION, observed=True, sort=False)
    out = grouped.agg(sends=("sends", "sum"), recvs=("recvs", "sum"),
                      bytes_sent=("bytes_sent", "sum"), bytes_received=("bytes_received", "sum"),
                      no_bytes=("no_bytes", "any"), first_ns=("first_ns", "min"),
                      last_ns=("last_ns", "max"), no_time=("no_time", "any"))
    out = out.reset_index()
    for col in ("bytes_sent", "bytes_received"):
        out[col] = out[col].astype("Int64").mask(out["no_bytes"])
    for col in ("first_ns", "last_ns"):
        out[col] = out[col].astype("Int64").mask(out["no_time"])
    for col in ("sends", "recvs"):
        out[col] = out[col].astype("int64")
    return out[TRAFFIC_COLUMNS]


def filter_events(events: pd.DataFrame, ports: tuple[int, ...] = (),
                  pids: tuple[int, ...] = ()) -> pd.DataFrame:
    """The events on any of ``ports`` (local or remote) and of any of ``pids`` (empty: all),
    the same rule the capture applies in the kernel."""
    keep = pd.Series(True, index=events.index)
    if ports:
        keep &= events["local_port"].isin(ports) | events["remote_port"].isin(ports)
    if pids:
        keep &= events["pid"].isin(pids)
    return events[keep].reset_index(drop=True)
