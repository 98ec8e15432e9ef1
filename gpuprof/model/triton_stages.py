"""Triton's request stages: the names the ``requests`` table's ``stage`` column holds.

They belong to the model, not to the trace parser: analyses and renderers read stages by these
names whatever produced the rows.
"""

from __future__ import annotations

# stage -> (start timestamp, end timestamp), in display order
STAGES: dict[str, tuple[str, str]] = {
    "HTTP_RECV": ("HTTP_RECV_START", "HTTP_RECV_END"),
    "GRPC_WAITREAD": ("GRPC_WAITREAD_START", "GRPC_WAITREAD_END"),
    "REQUEST": ("REQUEST_START", "REQUEST_END"),
    "QUEUE": ("QUEUE_START", "COMPUTE_START"),
    "COMPUTE": ("COMPUTE_START", "COMPUTE_END"),
    "COMPUTE_INPUT": ("COMPUTE_START", "COMPUTE_INPUT_END"),
    "COMPUTE_INFER": ("COMPUTE_INPUT_END", "COMPUTE_OUTPUT_START"),
    "COMPUTE_OUTPUT": ("COMPUTE_OUTPUT_START", "COMPUTE_END"),
    "HTTP_SEND": ("HTTP_SEND_START", "HTTP_SEND_END"),
    "GRPC_SEND": ("GRPC_SEND_START", "GRPC_SEND_END"),
}
END_TO_END = "END_TO_END"
# gRPC's wait/read starts when the server begins waiting for a request, so it includes idle time
# before the client sent anything (Triton's trace docs): a gRPC request is "received" at its end.
RECEIVE_NAMES = ("HTTP_RECV_START", "GRPC_WAITREAD_END")
SEND_END_NAMES = ("HTTP_SEND_END", "GRPC_SEND_END")
FRONTEND_PREFIXES = ("HTTP_", "GRPC_")
KNOWN_NAMES = frozenset(n for pair in STAGES.values() for n in pair) | {"INFER_RESPONSE_COMPLETE"}
NO_MODEL = "(no header)"
