"""``gpuprof triton serve`` takes tritonserver's own ports (8000, 8001) when they are free, so
the README's ``-u 127.0.0.1:8000`` works, and another one when they are taken."""

from __future__ import annotations

import socket

from gpuprof.cli.triton_serve import _if_free


def test_a_free_port_is_taken_and_a_busy_one_is_not():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert _if_free(port) is None
    assert _if_free(port) == port
