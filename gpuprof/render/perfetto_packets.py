"""Perfetto trace packets for millions of slices: one packet sequence per track lane, each
packet as small as the format allows, encoded in bulk with numpy.

A lane's sequence opens with one packet (built with Perfetto's own classes) that clears the
sequence's incremental state and sets
- ``TracePacketDefaults``: the lane's track uuid, and timestamps on clock 64, a
  sequence-scoped clock that the packet's ``ClockSnapshot`` declares incremental and equal to
  BOOTTIME at the lane's first start: each packet's timestamp is then the ns since the
  sequence's previous packet (a slice's begin: the gap since the previous end; its end: its
  duration), one to four bytes instead of eight;
- ``InternedData.event_names``: the lane's slice names, each once, named by ``name_iid``.
Then a begin and an end packet per slice; the begin carries the name iid and the flow ids
(the varint fields ``flow_ids_old``/``terminating_flow_ids_old`` with small recycled ids, see
``perfetto_flows``). About 26 bytes a slice, where absolute timestamps, a track uuid on every
event and fixed64 flow ids took 43.

Slice packets are encoded column-wise: each row (one slice: its begin and end packet) is laid
out in fixed byte slots, each varint slot as wide as the chunk's largest value, packed into
uint64 words by shifts. The bytes a row really uses are exactly its non-zero ones (tags and
lengths are non-zero, and so is every byte of a minimal varint but the value 0, whose byte is
added back), so one boolean compress joins every row's packets. Encoding per
https://protobuf.dev/programming-guides/encoding/; tests decode it with Perfetto's classes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .protowire import varint_bytes

SEQUENCE_CLOCK = 64      # the first sequence-scoped clock id (64-127)
BOOTTIME = 6             # BuiltinClock.BOOTTIME: the trace's clock
INCREMENTAL_STATE_CLEARED = 1
TRACE_PACKET = b"\x0a"   # Trace.packet (1), length-delimited
TIMESTAMP = b"\x40"      # TracePacket.timestamp (8), varint
SEQUENCE = b"\x50"       # TracePacket.trusted_packet_sequence_id (10), varint
TRACK_EVENT = b"\x5a"    # TracePacket.track_event (11), length-delimited
BEGIN_NAMED = b"\x48\x01\x50"  # TrackEvent.type (9) = SLICE_BEGIN, then name_iid (10)
END_EVENT = b"\x5a\x02\x48\x02"  # a 2-byte track_event: type = SLICE_END
FLOW_IDS = b"\xa0\x02"   # TrackEvent.flow_ids_old (36), varint
TERMINATING_FLOW_IDS = b"\xd0\x02"  # TrackEvent.terminating_flow_ids_old (42), varint
# continuation bits of a varint of each length: 0x80 on every byte but the last
CONTINUATION = np.array([0] + [sum(0x80 << 8 * i for i in range(n - 1)) for n in range(1, 9)],
                        np.uint64)


def sequence_start(sequence_id: int, track_uuid: int, names: list[str], base_ns: int) -> bytes:
    """The packet that opens a lane's sequence: state cleared, defaults, names, clock."""
    from perfetto.protos.perfetto.trace.perfetto_trace_pb2 import (
        ClockSnapshot,
        EventName,
        InternedData,
        TracePacket,
        TracePacketDefaults,
        TrackEventDefaults,
    )

    clocks = [ClockSnapshot.Clock(clock_id=BOOTTIME, timestamp=base_ns),
              ClockSnapshot.Clock(clock_id=SEQUENCE_CLOCK, timestamp=base_ns, is_incremental=True)]
    packet = TracePacket(
        trusted_packet_sequence_id=sequence_id, sequence_flags=INCREMENTAL_STATE_CLEARED,
        trace_packet_defaults=TracePacketDefaults(
            timestamp_clock_id=SEQUENCE_CLOCK,
            track_event_defaults=TrackEventDefaults(track_uuid=track_uuid)),
        interned_data=InternedData(event_names=[EventName(iid=i, name=name)
                                                for i, name in enumerate(names, start=1)]),
        clock_snapshot=ClockSnapshot(clocks=clocks))
    return framed(packet.SerializeToString())


def framed(packet: bytes) -> bytes:
    """One ``Trace.packet`` entry."""
    return TRACE_PACKET + varint_bytes(len(packet)) + packet


def slice_packets(sequence_id: int, previous_ns: int, start: np.ndarray, end: np.ndarray,
                  iids: np.ndarray, flow: np.ndarray, terminating: np.ndarray) -> np.ndarray:
    """Begin and end packets of non-overlapping slices sorted by start (b0 e0 b1 e1 ...),
    timestamps as deltas from ``previous_ns``, the sequence's last timestamp. ``flow``: the
    flow id each slice starts or passes (0: none); ``terminating``: the flow it ends."""
    gaps = start - np.concatenate(([previous_ns], end[:-1]))
    ts, duration, name = varints(gaps), varints(end - start), varints(iids)
    arrow = arrow_field(flow, terminating)
    sequence = SEQUENCE + varint_bytes(sequence_id)
    zero = np.zeros(len(start), np.uint8)  # so that every length sum is an array
    event_length = zero + len(BEGIN_NAMED) + name.length + arrow.length
    event = varints(event_length)
    begin = varints(len(TIMESTAMP) + ts.length + len(sequence) + len(TRACK_EVENT) + event.length
                    + event_length)
    end_packet = varints(zero + len(TIMESTAMP) + duration.length + len(sequence)
                         + len(END_EVENT))
    row = SlotRow()
    for part in (TRACE_PACKET, begin, TIMESTAMP, ts, sequence + TRACK_EVENT, event,
                 BEGIN_NAMED, name, arrow,
                 TRACE_PACKET, end_packet, TIMESTAMP, duration, sequence + END_EVENT):
        row.add(part)
    return row.to_bytes(len(start))


def arrow_field(flow: np.ndarray, terminating: np.ndarray) -> Varints:
    """One slot for a slice's launch arrow: ``flow_ids_old`` where it starts or passes a flow,
    ``terminating_flow_ids_old`` where it ends one (a slice does one or the other)."""
    ends = terminating != 0
    if np.any(ends & (flow != 0)):
        raise ValueError("a slice both passes and ends a flow")
    column = varints(np.where(ends, terminating, flow), FLOW_IDS)
    # the tag is the low two bytes: flip it to the terminating one where the flow ends
    swap = int.from_bytes(FLOW_IDS, "little") ^ int.from_bytes(TERMINATING_FLOW_IDS, "little")
    column.encoded = np.where(ends, column.encoded ^ np.uint64(swap), column.encoded)
    return column


@dataclass
class Varints:
    """A column of varints, each as its little-endian bytes in one uint64."""

    encoded: np.ndarray         # uint64
    length: np.ndarray | int    # bytes each row uses (0: absent)
    width: int                  # the slot: bytes of the longest
    zero_rows: np.ndarray       # rows whose varint is the single byte 0x00


def varints(values: np.ndarray, tag: bytes = b"") -> Varints:
    """Unsigned varints of ``values`` (>= 0). With a ``tag``, a field present only where its
    value is non-zero (the tag first)."""
    v = np.asarray(values)
    # int64 >= 0 has the same bits as uint64: a view, no copy (a negative value would read
    # as a huge one and be refused below)
    v = v.view(np.uint64) if v.dtype == np.int64 else v.astype(np.uint64, copy=False)
    top = int(v.max()) if len(v) else 0
    width = max(1, -(-top.bit_length() // 7))
    if width + len(tag) > 8:
        raise ValueError(f"{top} is too large for a packed varint")
    encoded, length = v, 1  # one byte: the value itself
    if width > 1:
        encoded = v & np.uint64(0x7F)
        length = np.ones(len(v), np.uint8)
        for k in range(1, width):  # 7 bits a byte: byte k holds bits 7k..7k+6, shifted by k
            length += v >= np.uint64(1 << 7 * k)
            encoded |= (v & np.uint64(0x7F << 7 * k)) << np.uint64(k)
        encoded |= CONTINUATION[length]
    if not tag:
        return Varints(encoded, length, width, np.flatnonzero(v == 0))
    present = v != 0
    tagged = (encoded << np.uint64(8 * len(tag))) | np.uint64(int.from_bytes(tag, "little"))
    return Varints(np.where(present, tagged, np.uint64(0)),
                   np.where(present, length + len(tag), 0), width + len(tag),
                   np.zeros(0, np.int64))


class SlotRow:
    """A row layout of constant bytes and varint slots, filled for every row at once."""

    def __init__(self) -> None:
        self.template = bytearray()  # constants, zeros where the slots go
        self.slots: list[tuple[int, Varints]] = []

    def add(self, part: bytes | Varints) -> None:
        if isinstance(part, bytes):
            self.template += part
            return
        self.slots.append((len(self.template), part))
        self.template += bytes(part.width)

    def to_bytes(self, rows: int) -> np.ndarray:
        """Every row's used bytes, row after row. Words are filled as contiguous columns
        (faster than strided ones) and interleaved once."""
        self.template += bytes(-len(self.template) % 8)
        columns = [np.full(rows, word, np.uint64)
                   for word in np.frombuffer(bytes(self.template), "<u8").tolist()]
        for offset, column in self.slots:
            _place(columns, offset, column)
        data = np.stack(columns, axis=1).astype("<u8", copy=False).view(np.uint8)
        used = data != 0
        for offset, column in self.slots:
            used[column.zero_rows, offset] = True
        return data[used]  # written as it is: a file takes any buffer


def _place(columns: list[np.ndarray], offset: int, column: Varints) -> None:
    """OR a column's bytes into its slot at byte ``offset`` of each row (a slot may straddle
    two words)."""
    word, byte = divmod(offset, 8)
    columns[word] |= column.encoded << np.uint64(8 * byte)
    if byte and byte + column.width > 8:
        columns[word + 1] |= column.encoded >> np.uint64(64 - 8 * byte)
