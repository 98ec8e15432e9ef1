"""A minimal keep-alive HTTP/1.1 client connection for inference POSTs.

``http.client`` parses every response's headers with the ``email`` package and wraps the body
in file objects: tens of microseconds per request that would show up as "client overhead".
Triton answers with ``Content-Length`` bodies, so reading a response is: recv until the blank
line, read the status and three headers, recv the rest. Anything else (chunked bodies, a
closed connection) is an error the caller records, and the next request reconnects.
"""

from __future__ import annotations

import socket
import time

RECV_BYTES = 1 << 16


class RawHttpConnection:
    def __init__(self, host: str, port: int, timeout_s: float):
        self.address, self.timeout_s = (host, port), timeout_s
        self.host_header = f"{host}:{port}".encode()
        self.sock: socket.socket | None = None
        self.buffer = bytearray()
        # the connection's client port (what eBPF sees) and the bytes of the last exchange
        self.local_port, self.sent_bytes, self.received_bytes = -1, 0, 0

    def _connect(self) -> socket.socket:
        sock = socket.create_connection(self.address, timeout=self.timeout_s)
        # the whole request goes out in one send; no Nagle delay on it
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock, self.buffer = sock, bytearray()
        self.local_port = sock.getsockname()[1]
        return sock

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
        self.sock, self.buffer = None, bytearray()

    def post(self, path: bytes, body: bytes, json_size: int | None):
        """Send one POST; returns (sent_ns, first_byte_ns, status, headers, body)."""
        sock = self.sock or self._connect()
        head = [b"POST ", path, b" HTTP/1.1\r\nHost: ", self.host_header,
                b"\r\nContent-Type: application/octet-stream\r\nContent-Length: ",
                str(len(body)).encode(), b"\r\n"]
        if json_size is not None:
            head += [b"Inference-Header-Content-Length: ", str(json_size).encode(), b"\r\n"]
        request = b"".join(head) + b"\r\n" + body
        sock.sendall(request)
        sent = time.perf_counter_ns()
        self.sent_bytes, self.received_bytes = len(request), len(self.buffer)
        first = self._fill_until_headers(sock)
        status, headers, end = self._headers()
        body_len = int(headers.get(b"content-length", b"0"))
        self._fill_to(sock, end + body_len)
        data = bytes(self.buffer[end:end + body_len])
        del self.buffer[:end + body_len]
        if headers.get(b"connection", b"").lower() == b"close":
            self.close()
        return sent, first, status, headers, data

    def _recv(self, sock: socket.socket) -> None:
        chunk = sock.recv(RECV_BYTES)
        if not chunk:
            raise ConnectionResetError("the server closed the connection")
        self.buffer += chunk
        self.received_bytes += len(chunk)

    def _fill_until_headers(self, sock: socket.socket) -> int:
        first = 0
        while self.buffer.find(b"\r\n\r\n") < 0:
            self._recv(sock)
            first = first or time.perf_counter_ns()
        return first or time.perf_counter_ns()

    def _fill_to(self, sock: socket.socket, size: int) -> None:
        while len(self.buffer) < size:
            self._recv(sock)

    def _headers(self) -> tuple[int, dict[bytes, bytes], int]:
        end = self.buffer.find(b"\r\n\r\n")
        lines = bytes(self.buffer[:end]).split(b"\r\n")
        status = int(lines[0].split(b" ", 2)[1])
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            headers[name.strip().lower()] = value.strip()
        if b"chunked" in headers.get(b"transfer-encoding", b""):
            raise ConnectionError("chunked HTTP responses are not supported")
        return status, headers, end + 4
