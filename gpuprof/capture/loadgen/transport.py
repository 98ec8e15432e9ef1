"""One inference request at a time over HTTP or gRPC, timed in four points.

Each worker thread owns one sender (one connection). Requests are built with tritonclient's
public helpers (``generate_request_body`` for HTTP, its protobuf messages for gRPC) and sent on
a connection we hold (``rawhttp`` for HTTP; responses are decoded by ``parse_infer_response``,
the same work as tritonclient's parser without its overhead), so each request yields
``start -> sent -> first response byte -> done`` on ``time.perf_counter_ns`` (CLOCK_MONOTONIC
on Linux: the clock Triton's trace timestamps use). That split is perf_analyzer's "Client
Send", "response wait" and "Client Recv".

For gRPC the (un)marshalling happens inside the call, so "send" is building the request
message and "recv" is wrapping the response; the wire time is all "wait".
"""

from __future__ import annotations

import json
import time
from typing import NamedTuple
from urllib.parse import quote

import numpy as np

from ...errors import BadInputError, require_module
from .inputs import Payload
from .rawhttp import RawHttpConnection
from .server_api import CLIENT_HINT


class Record(NamedTuple):
    seq: int            # the request's number in this run; the request id is f"{prefix}{seq}"
    sched_ns: int       # when it was due (request-rate mode), else 0
    start_ns: int
    sent_ns: int
    recv_ns: int        # the response's first bytes arrived
    end_ns: int
    error: str | None   # None when the server answered with a result
    client_port: int = -1   # the connection's local port (HTTP), to match eBPF's TCP calls
    sent_bytes: int = 0     # bytes of the request written to the socket (HTTP)
    received_bytes: int = 0  # bytes read from the socket for the response (HTTP)


def split_url(url: str) -> tuple[str, int]:
    text = url.split("://", 1)[-1].rstrip("/")
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit():
        raise BadInputError(f"bad server address '{url}'", "Use HOST:PORT, e.g. 127.0.0.1:8000")
    return host.strip("[]"), int(port)


class HttpSender:
    def __init__(self, url: str, model: str, version: str, payloads: list[Payload],
                 outputs: list[str], timeout_s: float):
        httpclient = require_module("tritonclient.http", CLIENT_HINT)
        self._client_cls = httpclient.InferenceServerClient
        self.conn = RawHttpConnection(*split_url(url), timeout_s)
        version_part = f"/versions/{quote(version, safe='')}" if version else ""
        self.path = f"/v2/models/{quote(model, safe='')}{version_part}/infer".encode()
        self.outputs = [httpclient.InferRequestedOutput(n, binary_data=True) for n in outputs]
        self.inputs = [_http_inputs(httpclient, p) for p in payloads]

    def send(self, request_id: str, index: int) -> tuple[int, int, int, int, str | None]:
        start = time.perf_counter_ns()
        try:
            body, json_size = self._client_cls.generate_request_body(
                self.inputs[index], outputs=self.outputs, request_id=request_id)
            sent, recv, status, headers, data = self.conn.post(
                self.path, body if isinstance(body, bytes) else body.encode(), json_size)
            error = self._parse(status, headers, data)
        except OSError as exc:
            self.conn.close()  # the next request reconnects
            now = time.perf_counter_ns()
            return start, now, now, now, f"{type(exc).__name__}: {exc}"
        return start, sent, recv, time.perf_counter_ns(), error

    def _parse(self, status: int, headers: dict, data: bytes) -> str | None:
        if status != 200:
            return _http_error(status, data)
        header = headers.get(b"inference-header-content-length")
        return parse_infer_response(data, int(header) if header else None)

    def wire_facts(self) -> tuple[int, int, int]:
        """(client port, request bytes, response bytes) of the last request."""
        conn = self.conn
        return conn.local_port, conn.sent_bytes, conn.received_bytes

    def close(self) -> None:
        self.conn.close()


def parse_infer_response(data: bytes, header_length: int | None) -> str | None:
    """Decode a KServe v2 binary-extension response: its JSON header, then where each output's
    bytes lie. The same work as tritonclient's ``parse_response_body``, which also defines two
    classes on every call (about 25 µs a response, all of it client overhead)."""
    header = json.loads(data[:header_length] if header_length is not None else data)
    offset = header_length if header_length is not None else len(data)
    for output in header.get("outputs", []):
        offset += output.get("parameters", {}).get("binary_data_size", 0)
    if offset != len(data):
        return f"malformed response: {len(data)} bytes, the header accounts for {offset}"
    return None


def _http_inputs(httpclient, payload: Payload) -> list:
    inputs = []
    for name, array in payload.items():
        tensor = httpclient.InferInput(name, list(array.shape), _datatype(array))
        tensor.set_data_from_numpy(array, binary_data=True)
        inputs.append(tensor)
    return inputs


# how a request that got no answer in time reads (HTTP: the socket's timeout; gRPC: the deadline)
TIMED_OUT = ("TimeoutError:", "gRPC DEADLINE_EXCEEDED:")


def _http_error(status: int, data: bytes) -> str:
    try:
        return f"HTTP {status}: {json.loads(data).get('error', '')}"
    except (ValueError, AttributeError):
        return f"HTTP {status}: {data[:200].decode(errors='replace')}"


class GrpcSender:
    def __init__(self, url: str, model: str, version: str, payloads: list[Payload],
                 outputs: list[str], timeout_s: float):
        self.grpc = require_module("grpc", CLIENT_HINT)
        grpcclient = require_module("tritonclient.grpc", CLIENT_HINT)
        self._pb = grpcclient.service_pb2
        self._result_cls = grpcclient.InferResult
        unlimited = [("grpc.max_send_message_length", -1), ("grpc.max_receive_message_length", -1)]
        self.channel = self.grpc.insecure_channel(url, options=unlimited)
        self.stub = grpcclient.service_pb2_grpc.GRPCInferenceServiceStub(self.channel)
        self.timeout_s = timeout_s
        self.templates = [self._template(model, version, p, outputs) for p in payloads]

    def _template(self, model: str, version: str, payload: Payload, outputs: list[str]):
        request = self._pb.ModelInferRequest(model_name=model, model_version=version)
        for name, array in payload.items():
            tensor = request.inputs.add(name=name, datatype=_datatype(array))
            tensor.shape.extend(array.shape)
            request.raw_input_contents.append(_raw_bytes(array))
        for name in outputs:
            request.outputs.add(name=name)
        return request

    def send(self, request_id: str, index: int) -> tuple[int, int, int, int, str | None]:
        start = time.perf_counter_ns()
        request = self._pb.ModelInferRequest()
        request.CopyFrom(self.templates[index])
        request.id = request_id
        sent = time.perf_counter_ns()
        try:
            response = self.stub.ModelInfer(request, timeout=self.timeout_s)
        except self.grpc.RpcError as exc:
            now = time.perf_counter_ns()
            return start, sent, now, now, f"gRPC {exc.code().name}: {exc.details()}"
        recv = time.perf_counter_ns()
        self._result_cls(response)
        return start, sent, recv, time.perf_counter_ns(), None

    def wire_facts(self) -> tuple[int, int, int]:
        # grpc hides its sockets: no client port, so eBPF calls cannot be tied to requests
        return -1, 0, 0

    def close(self) -> None:
        self.channel.close()


def _datatype(array: np.ndarray) -> str:
    from tritonclient.utils import np_to_triton_dtype

    return np_to_triton_dtype(array.dtype)


def _raw_bytes(array: np.ndarray) -> bytes:
    if array.dtype == np.object_:
        from tritonclient.utils import serialize_byte_tensor

        serialized = serialize_byte_tensor(array)
        return serialized.item() if serialized.size else b""
    return np.ascontiguousarray(array).tobytes()


def make_sender(protocol: str, *args, **kwargs):
    return (HttpSender if protocol == "http" else GrpcSender)(*args, **kwargs)
