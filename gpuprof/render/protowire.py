"""Protocol Buffers wire encoding for many small messages at once, with numpy.

Perfetto's Python classes (upb) cost about 3 µs per trace packet: too slow for millions.
Memory counter packets of the protobuf trace are built here column by column: each field is a
*segment*, a (rows, width) byte matrix plus the number of bytes each row really uses; an
embedded message is its length followed by its own segments, and ``to_bytes`` joins every
row's used bytes in one pass. Slice packets, which are most of a trace, have a leaner
fixed-slot encoder of their own (``perfetto_packets``).

The encoding follows https://protobuf.dev/programming-guides/encoding/: a varint is 7 bits a
byte, low bits first, the high bit set on every byte but the last; a tag is the varint
``field << 3 | wire_type``. Tests parse the output back with Perfetto's own classes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

VARINT, FIXED64, LENGTH_DELIMITED = 0, 1, 2
MAX_VARINT_BYTES = 10


@dataclass(frozen=True)
class Segment:
    """Bytes of one field for every row: ``matrix[row, :lengths[row]]`` are row's bytes."""

    matrix: np.ndarray   # (rows, width) uint8
    lengths: np.ndarray  # (rows,) int64

    def __len__(self) -> int:
        return len(self.lengths)


def varint_bytes(value: int) -> bytes:
    """One varint, for the few scalar prefixes."""
    out = bytearray()
    while True:
        low, value = value & 0x7F, value >> 7
        out.append(low | (0x80 if value else 0))
        if not value:
            return bytes(out)


def varints(values: np.ndarray) -> Segment:
    """Unsigned varints of ``values`` (int64 >= 0, or uint64)."""
    values = np.asarray(values).astype(np.uint64)
    if not len(values):
        return Segment(np.zeros((0, 1), np.uint8), np.zeros(0, np.int64))
    width = _varint_width(int(values.max()))
    lengths = np.ones(len(values), np.int64)
    for k in range(1, width):
        lengths += values >= np.uint64(1) << np.uint64(7 * k)
    matrix = np.empty((len(values), width), np.uint8)
    for k in range(width):  # only as many passes as the largest value needs
        low = ((values >> np.uint64(7 * k)) & np.uint64(0x7F)).astype(np.uint8)
        matrix[:, k] = low | ((k < lengths - 1).astype(np.uint8) << 7)
    return Segment(matrix, lengths)


def _varint_width(value: int) -> int:
    return max(1, -(-value.bit_length() // 7))


def fixed(data: bytes, rows: int, present: np.ndarray | None = None) -> Segment:
    """The same bytes on every row (on rows where ``present``)."""
    matrix = np.broadcast_to(np.frombuffer(data, np.uint8), (rows, len(data)))
    return Segment(matrix, _masked(np.full(rows, len(data), np.int64), present))


def tag(field: int, wire_type: int, rows: int, present: np.ndarray | None = None) -> Segment:
    return fixed(varint_bytes(field << 3 | wire_type), rows, present)


def varint_field(field: int, values: np.ndarray, present: np.ndarray | None = None) -> list[Segment]:
    """``field`` as a varint on every row (where ``present``)."""
    body = varints(values)
    return [tag(field, VARINT, len(body), present), _only(body, present)]


def fixed64_field(field: int, values: np.ndarray, present: np.ndarray | None = None) -> list[Segment]:
    """``field`` as a little-endian fixed64 on every row (where ``present``)."""
    body = np.ascontiguousarray(np.asarray(values).astype("<u8")).view(np.uint8).reshape(-1, 8)
    segment = Segment(body, np.full(len(body), 8, np.int64))
    return [tag(field, FIXED64, len(body), present), _only(segment, present)]


def message_field(field: int, segments: list[Segment]) -> list[Segment]:
    """``segments`` as one embedded message in length-delimited ``field``: its tag, its
    length, then its own segments (nothing is copied)."""
    rows = len(segments[0])
    return [tag(field, LENGTH_DELIMITED, rows), varints(byte_length(segments)), *segments]


def byte_length(segments: list[Segment]) -> np.ndarray:
    """Bytes each row takes."""
    total = segments[0].lengths.copy()
    for segment in segments[1:]:
        total += segment.lengths
    return total


def to_bytes(segments: list[Segment]) -> bytes:
    """Every row's used bytes, row after row."""
    matrix = np.hstack([s.matrix for s in segments])
    used = np.hstack([np.arange(s.matrix.shape[1]) < s.lengths[:, None] for s in segments])
    return matrix[used].tobytes()


def _masked(lengths: np.ndarray, present: np.ndarray | None) -> np.ndarray:
    return lengths if present is None else lengths * np.asarray(present, bool)


def _only(segment: Segment, present: np.ndarray | None) -> Segment:
    return Segment(segment.matrix, _masked(segment.lengths, present))
