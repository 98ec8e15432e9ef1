"""Start the tritonserver bundled in nvidia-pytriton on loopback, and always stop it.

``TritonServer`` is a context manager: the server runs in its own process group, on 127.0.0.1
with free HTTP/gRPC ports and metrics off, and is stopped with SIGTERM then SIGKILL. Every live
server is also stopped by an atexit hook and a SIGTERM/SIGHUP handler, so a server gpuprof
starts never outlives it. ``serve_onnx`` writes a python-backend repository for an ONNX file
and returns a started server.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections import deque
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import CaptureError
from . import children
from .triton_backends import TritonInstall, find_triton

LOG_TAIL_LINES = 25
# jemalloc, where Debian/Ubuntu/RHEL install it (libjemalloc2): preloaded into the server
# (Triton's own advice for its CPU backends). It also keeps tritonserver 2.51's trace
# use-after-free (capture/loadgen/tracing.py) from corrupting the allocator's free lists,
# which glibc keeps inside freed memory: see docs/BENCHMARKS.md for the crash counts.
JEMALLOC_PATHS = tuple(f"{root}/libjemalloc.so.2" for root in (
    "/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/usr/lib64", "/usr/lib",
    "/usr/local/lib"))
SITE_PACKAGES_ENV = "GPUPROF_SITE_PACKAGES"  # read by triton_onnx_model.py
TRACE_LEVELS = ("TIMESTAMPS", "TENSORS")


@dataclass
class TraceConfig:
    """Triton-mode tracing to a file: the file is written at shutdown unless log_frequency > 0,
    in which case Triton writes ``<file>.0``, ``<file>.1``, ... every ``log_frequency`` traces."""

    file: Path
    levels: tuple[str, ...] = ("TIMESTAMPS",)
    rate: int = 1
    log_frequency: int = 0

    def args(self) -> list[str]:
        out = ["--trace-config", f"triton,file={self.file}"]
        out += [arg for level in self.levels for arg in ("--trace-config", f"level={level}")]
        # log-frequency belongs to the triton trace mode: the global form is silently ignored
        out += ["--trace-config", f"rate={self.rate}",
                "--trace-config", f"triton,log-frequency={self.log_frequency}"]
        return out


@dataclass
class TritonServer(children.Child):
    """A tritonserver process on 127.0.0.1. Use as ``with TritonServer(repo) as server: ...``."""

    model_repository: Path
    http_port: int | None = None
    grpc_port: int | None = None
    trace: TraceConfig | None = None
    ready_timeout_s: float = 90.0
    stop_timeout_s: float = 10.0
    exit_timeout_s: int = 3     # Triton waits this long for open client connections at SIGTERM
    log_verbose: int = 0
    extra_args: list[str] = field(default_factory=list)
    model_name: str = ""        # set by serve_onnx: the model it serves
    keep_log: bool = False      # keep the server's log file after stop() (it is read on errors)
    owned_paths: list[Path] = field(default_factory=list)  # removed by stop(): temp repositories
    _proc: subprocess.Popen | None = field(default=None, init=False, repr=False)
    _log_path: Path | None = field(default=None, init=False, repr=False)

    @property
    def http_url(self) -> str:
        return f"127.0.0.1:{self.http_port}"

    @property
    def grpc_url(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    @property
    def log_path(self) -> Path | None:
        return self._log_path

    def start(self) -> None:
        if self._proc is not None:
            return
        install = find_triton()
        self.http_port = self.http_port or free_port()
        self.grpc_port = self.grpc_port or free_port(exclude={self.http_port})
        fd, log = tempfile.mkstemp(prefix="gpuprof-tritonserver-", suffix=".log")
        self._log_path = Path(log)
        with os.fdopen(fd, "wb") as log_file:
            # start_new_session: own process group, so stop() reaches the python stubs too
            self._proc = subprocess.Popen(
                self.command(install), stdout=log_file, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, env=server_env(install), start_new_session=True,
                preexec_fn=children.die_with_parent(signal.SIGTERM))
        children.register(self)
        try:
            self._wait_ready()
        except BaseException:
            self.keep_log = True  # a failed start keeps its whole log for the user
            self.stop()
            raise

    def command(self, install: TritonInstall) -> list[str]:
        cmd = [str(install.binary), f"--model-repository={self.model_repository}",
               f"--backend-directory={install.backends_dir}",
               "--http-address=127.0.0.1", f"--http-port={self.http_port}",
               "--grpc-address=127.0.0.1", f"--grpc-port={self.grpc_port}",
               "--allow-metrics=false", "--allow-sagemaker=false", "--allow-vertex-ai=false",
               f"--log-verbose={self.log_verbose}", "--exit-on-error=true",
               f"--exit-timeout-secs={self.exit_timeout_s}"]
        return cmd + (self.trace.args() if self.trace else []) + list(self.extra_args)

    def _wait_ready(self) -> None:
        proc = self._proc
        assert proc is not None
        deadline = time.monotonic() + self.ready_timeout_s
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise CaptureError(
                    f"tritonserver exited with code {proc.returncode} while starting:\n"
                    f"{self.log_tail()}", f"Read the log lines above (whole log: {self.log_path})")
            if _http_ok(f"http://{self.http_url}/v2/health/ready"):
                return
            time.sleep(0.1)
        raise CaptureError(f"tritonserver was not ready after {self.ready_timeout_s:.0f} s:\n"
                           f"{self.log_tail()}",
                           f"Read the log lines above (whole log: {self.log_path})")

    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        if not self._log_path or not self._log_path.exists():
            return ""
        with open(self._log_path, errors="replace") as handle:
            # the start-up option tables ("| ... |", "+---+") would crowd out the error lines
            kept = (line for line in handle if line.strip() and line[0] not in "|+")
            return "".join(deque(kept, maxlen=lines)).rstrip()

    def stop(self) -> int | None:
        """SIGTERM the process group, SIGKILL after ``stop_timeout_s``; returns the exit code."""
        proc, self._proc = self._proc, None
        children.unregister(self)
        if proc is None:
            return None
        if proc.poll() is None:
            children.signal_group(proc, signal.SIGTERM)
            try:
                proc.wait(self.stop_timeout_s)
            except subprocess.TimeoutExpired:
                children.signal_group(proc, signal.SIGKILL)
                proc.wait(5)
        # the python stubs share the group; make sure none is left behind
        children.signal_group(proc, signal.SIGKILL)
        self._remove_files()
        return proc.returncode

    def _remove_files(self) -> None:
        for path in self.owned_paths:
            shutil.rmtree(path, ignore_errors=True)
        self.owned_paths = []
        if self._log_path and not self.keep_log:
            with contextlib.suppress(OSError):
                self._log_path.unlink()


def serve_onnx(model_path: str | Path, name: str | None = None, repo_dir: str | Path | None = None,
               instances: int = 1, intra_op_threads: int = 1,
               profile_dir: str | Path | None = None, batching=None,
               **server_kwargs) -> TritonServer:
    """Write a repository for ``model_path`` and start a server for it (already ready).

    The caller owns the returned server: use it as a context manager or call ``stop()``.
    ``server.model_name`` holds the served model's name. ``profile_dir``: the model
    profiles ONNX Runtime into that folder (one profile per session, see triton_onnx_model).
    ``batching``: a ``triton_repo.Batching`` to serve with Triton's dynamic batcher.
    """
    from .triton_repo import write_repository

    repo = Path(repo_dir) if repo_dir else Path(tempfile.mkdtemp(prefix="gpuprof-triton-repo-"))
    server = TritonServer(repo, owned_paths=[] if repo_dir else [repo], **server_kwargs)
    try:
        server.model_name = write_repository(model_path, repo, name, instances, intra_op_threads,
                                             profile_dir, batching)
    except BaseException:
        server._remove_files()  # a temporary repository goes with the failed write
        raise
    server.start()
    _wait_model_ready(server, server.model_name)
    return server


def _wait_model_ready(server: TritonServer, model: str, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if _http_ok(f"http://{server.http_url}/v2/models/{model}/ready"):
            return
        time.sleep(0.1)
    tail = server.log_tail()
    server.keep_log = True
    server.stop()
    raise CaptureError(f"model '{model}' did not become ready:\n{tail}",
                       f"Read the log lines above (whole log: {server.log_path})")


def server_env(install: TritonInstall) -> dict[str, str]:
    """The server's environment: its libraries first, and where this interpreter's packages
    are, for the model. The python stub embeds the system libpython in isolated mode (it
    ignores PYTHONPATH), so ``triton_onnx_model.py`` adds these folders to ``sys.path`` itself;
    site-packages only, so the stub's own standard library still wins."""
    env = dict(os.environ)
    env["LD_LIBRARY_PATH"] = os.pathsep.join(
        p for p in (str(install.libs_dir), env.get("LD_LIBRARY_PATH", "")) if p)
    paths = [p for p in sys.path if p.endswith(("site-packages", "dist-packages"))
             and Path(p).is_dir()]
    env[SITE_PACKAGES_ENV] = os.pathsep.join(paths)
    if (malloc := jemalloc()) and not user_malloc():
        env["LD_PRELOAD"] = " ".join(p for p in (malloc, env.get("LD_PRELOAD", "")) if p)
    return env


def jemalloc() -> str | None:
    """The jemalloc gpuprof preloads into the server, or None (not installed, or
    GPUPROF_TRITON_MALLOC=system)."""
    if os.environ.get("GPUPROF_TRITON_MALLOC", "auto") == "system":
        return None
    return next((path for path in JEMALLOC_PATHS if Path(path).is_file()), None)


def server_malloc() -> tuple[str | None, str]:
    """The allocator gpuprof's servers run on (the preloaded library, or None for glibc's),
    and what to tell the user about it (serve's banner, doctor)."""
    if mine := user_malloc():
        return mine, f"{mine} (your LD_PRELOAD)"
    if path := jemalloc():
        return path, f"jemalloc ({path}; GPUPROF_TRITON_MALLOC=system for glibc's)"
    if os.environ.get("GPUPROF_TRITON_MALLOC") == "system":
        return None, "glibc (GPUPROF_TRITON_MALLOC=system)"
    return None, ("glibc (apt-get install libjemalloc2: with glibc, tritonserver 2.51 crashes "
                  "more often while it traces)")


def user_malloc() -> str | None:
    """An allocator the user preloads already (jemalloc, tcmalloc, mimalloc...): it stays the
    only one."""
    return next((lib for lib in os.environ.get("LD_PRELOAD", "").replace(":", " ").split()
                 if "malloc" in Path(lib).name), None)


def free_port(exclude: Collection[int | None] = ()) -> int:
    """A TCP port free on 127.0.0.1 right now (the OS picks it)."""
    for _ in range(20):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        if port not in exclude:
            return port
    raise CaptureError("could not find a free TCP port on 127.0.0.1")


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1.0) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False



