"""Every command in the README is an example a test runs, as written.

The README's bash blocks are parsed (continuation lines joined, comments dropped) and each
command is run in order in one scratch folder, where the README's placeholders are real files:
``report.sqlite`` is a shared nsys export, ``model.onnx`` the PP-OCR classifier, ``models/`` the
project's models, and ``/tmp/`` the scratch folder. ``gpuprof triton serve`` starts a real
server in the background; the ``perf`` lines after it load-test that server (at the address it
chose, 8000 when free), and the next other command stops it, as Ctrl-C would. Perf's windows
are 1 s instead of 5 and the capture's 30 s are 3 (timing is never asserted). ``sudo`` lines
run where this is root and eBPF can run, GPU-only ones where there is a GPU; elsewhere they
skip with the reason. A command no rule here knows fails: a new README line needs its test.
"""

from __future__ import annotations

import contextlib
import os
import queue
import re
import shlex
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import warnings
from pathlib import Path

import pytest

from tests.conftest import _missing_reason, fixtures_root, nsys_fixtures

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
# how tritonserver's log ends when it crashed (or hung in its crash handler)
# (SIGSEGV, SIGABRT, SIGBUS; Ctrl-C's "Signal (2)" is a normal stop)
TRACE_CRASH_MARKS = ("Signal (11)", "Signal (6)", "Signal (7)", "corrupted", "free(): ",
                     "double free")
TIMEOUT_S = 600
# bounded stand-ins for open-ended durations (the capture's 30 s would only wait longer)
SHORTER = {("--duration", "30"): ("--duration", "3")}
# perf's measurement windows shortened from 5 s (timing is never asserted; the lines run faster)
SHORT_WINDOWS = ["--measurement-interval", "1000"]
# options whose value is a file or folder a command writes
WRITES = ("-o", "--output", "-f", "--save", "--out-dir", "--chrome-trace", "--trace-csv",
          "--waterfall", "--node-csv", "--memory-plot")


def readme_commands(text: str) -> list[str]:
    """The commands of the ```bash blocks: continuation lines joined, comments dropped."""
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", text, re.S):
        joined = re.sub(r"\\\n\s*", " ", block)
        for line in joined.splitlines():
            words = shlex.split(line, comments=True)
            if words:
                commands.append(shlex.join(words))
    return commands


def readme_python() -> str:
    return "\n".join(re.findall(r"```python\n(.*?)```", README.read_text(), re.S))


COMMANDS = readme_commands(README.read_text())


class Workspace:
    """The scratch folder the commands run in, and the server the perf lines talk to."""

    def __init__(self, root: Path):
        self.root = root
        self.server: subprocess.Popen | None = None
        self.server_url: str | None = None
        self.server_log: Path | None = None   # tritonserver's own log, as serve prints it
        self.server_words: list[str] | None = None
        self.env = {**os.environ, "PYTHONPATH": str(REPO), "GPUPROF_ENGINE_CACHE": str(root / "engines"),
                    "GPUPROF_FIXTURES": str(fixtures_root()), "GPUPROF_SKIP_SETUP": "1"}
        (root / "models").symlink_to(REPO / "models")
        (root / "model.onnx").symlink_to(REPO / "models" / "ppocr_mobile_v2_cls.onnx")
        export = _export_with_kernels()
        if export is not None:
            (root / "report.sqlite").symlink_to(export)
            # the many-exports lines: two real exports, as ranks and as a folder of runs
            (root / "runs").mkdir()
            for rank, path in enumerate(_exports_with_kernels()[:2]):
                (root / f"rank{rank}.sqlite").symlink_to(path)
                (root / "runs" / path.name).symlink_to(path)

    def words(self, command: str) -> list[str]:
        """The command as run here: /tmp/ is the scratch folder, gpuprof this checkout's."""
        words = shlex.split(command.replace("/tmp/", f"{self.root}/"))
        words = [SHORTER.get(pair, pair)[1] if pair in SHORTER else w
                 for w, pair in zip(words, _pairs(words), strict=True)]
        return [sys.executable, "-m", "gpuprof", *words[1:]] if words[0] == "gpuprof" else words

    def run(self, words: list[str], cwd: Path | None = None) -> subprocess.CompletedProcess:
        result = subprocess.run(words, cwd=cwd or self.root, env=self.env, capture_output=True,
                                text=True, timeout=TIMEOUT_S, start_new_session=True)
        assert result.returncode == 0, \
            f"{shlex.join(words)}\n{result.stderr[-3000:]}{self.server_state()}"
        assert "Error:" not in result.stderr, result.stderr
        return result

    def _note_log(self, line) -> None:
        if match := re.match(r"\s+log\s+(\S+\.log)\s*$", str(line)):
            self.server_log = Path(match.group(1))

    def _wait_for_log_line(self, lines: queue.Queue) -> None:
        """serve's stdout (the log's path) and stderr ("Run:") are read by two threads: the
        log line may come second."""
        deadline = time.monotonic() + 10
        while self.server_log is None and (left := deadline - time.monotonic()) > 0:
            try:
                self._note_log(lines.get(timeout=left))
            except queue.Empty:
                return

    def server_state(self) -> str:
        """For a failed command: whether the README's server still runs, and its log's end
        (a load test that failed because the server died or hung must say which)."""
        if self.server is None:
            return ""
        state = "running" if self.server.poll() is None else f"exited ({self.server.returncode})"
        tail = ""
        if self.server_log is not None and self.server_log.is_file():
            tail = "".join(self.server_log.read_text(errors="replace").splitlines(True)[-40:])
        return f"\n--- the triton serve server: {state}; its log {self.server_log} ends:\n{tail}"

    def start_server(self, words: list[str]) -> None:
        self.stop_server()
        self.server_words, self.server_log = words, None
        self.server = subprocess.Popen(words, cwd=self.root, env=self.env, text=True,
                                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                       start_new_session=True, preexec_fn=_ctrl_c_stops)
        lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=_forward, args=(self.server.stderr, lines), daemon=True).start()
        # its stdout (where the log's path is) joins the same queue
        threading.Thread(target=_forward, args=(self.server.stdout, lines), daemon=True).start()
        seen = []
        while True:
            try:
                line = lines.get(timeout=120)
            except queue.Empty:
                break
            seen.append(line)
            self._note_log(line)
            # serve prints the exact load test to run against it
            if match := re.match(r"Run: gpuprof perf .* -u (\S+)", line):
                self.server_url = match.group(1)
                self._wait_for_log_line(lines)
                return
            if line is _EOF and self.server.poll() is not None:
                break
        self.stop_server()
        pytest.fail("triton serve did not print its perf command:\n" + "".join(map(str, seen)))

    def server_crashed_tracing(self) -> bool:
        """Whether tritonserver's log ends in a crash: a signal, or glibc's heap check."""
        if self.server_log is None or not self.server_log.is_file():
            return False
        log = self.server_log.read_text(errors="replace")
        return any(mark in log for mark in TRACE_CRASH_MARKS)

    def restart_server(self) -> None:
        words = self.server_words
        self.stop_server()
        assert words is not None
        self.start_server(words)

    def stop_server(self) -> None:
        """Ctrl-C, as a user stops it (the trace file is written then)."""
        if self.server is None:
            return
        with contextlib.suppress(ProcessLookupError):  # serve exits when its server died
            os.killpg(self.server.pid, signal.SIGINT)
        try:
            self.server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(self.server.pid, signal.SIGKILL)
            self.server.wait()
        self.server, self.server_url = None, None


_EOF = "<end of output>"


def _ctrl_c_stops() -> None:
    """SIGINT back to its default in the server, so Python turns it into KeyboardInterrupt as
    in a terminal (a test runner started in the background inherits it ignored)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _forward(stream, lines: queue.Queue) -> None:
    for line in stream:
        lines.put(line)
    lines.put(_EOF)


def _pairs(words: list[str]) -> list[tuple[str, str]]:
    """(option, value) for each word that is an option's value; (word, word) for the rest."""
    return [(words[i - 1], w) if i and words[i - 1].startswith("-") else (w, w)
            for i, w in enumerate(words)]


def _exports_with_kernels() -> list[Path]:
    """Shared nsys exports with kernels, smallest first."""
    found = []
    for path in sorted(nsys_fixtures(), key=lambda p: p.stat().st_size):
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
            tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
            if "CUPTI_ACTIVITY_KIND_KERNEL" in tables and db.execute(
                    "SELECT COUNT(*) FROM CUPTI_ACTIVITY_KIND_KERNEL").fetchone()[0]:
                found.append(path)
    return found


def _export_with_kernels() -> Path | None:
    """The smallest shared nsys export with kernels and NVTX ranges (what the examples show)."""
    for path in sorted(nsys_fixtures(), key=lambda p: p.stat().st_size):
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
            tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
            if {"CUPTI_ACTIVITY_KIND_KERNEL", "NVTX_EVENTS"} <= tables and db.execute(
                    "SELECT COUNT(*) FROM CUPTI_ACTIVITY_KIND_KERNEL").fetchone()[0]:
                return path
    return None


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    space = Workspace(tmp_path_factory.mktemp("readme"))
    yield space
    space.stop_server()


def _skip_reason(words: list[str], space: Workspace) -> str | None:
    """Why this machine cannot run the command, or None."""
    if "report.sqlite" in words and not (space.root / "report.sqlite").exists():
        return "no shared nsys export with kernels (set GPUPROF_FIXTURES)"
    if any(w.startswith("models/") for w in words) and not (REPO / "models").is_dir():
        return "models/ not fetched (tools/setup.sh)"
    if words[:2] == ["gpuprof", "build"]:
        return _missing_reason("trt")
    if words[1] == "perf" or words[1:3] == ["triton", "serve"]:
        return _missing_reason("triton")
    return None


def _run_sudo(words: list[str]) -> str | None:
    """Why an eBPF command (sudo) cannot run here, or None (then it runs without sudo: as root)."""
    if os.geteuid() != 0:
        return "needs root (the README runs it with sudo)"
    from gpuprof.capture.net_preflight import choose_program, system_facts
    from gpuprof.errors import GpuprofError

    try:
        choose_program("auto", system_facts())
    except GpuprofError as exc:
        return f"eBPF cannot run here: {exc.one_line()}"
    return None


def _written(words: list[str]) -> list[str]:
    return [words[i + 1] for i, w in enumerate(words[:-1]) if w in WRITES]


@pytest.mark.parametrize("command", COMMANDS, ids=[f"{i:02d}" for i in range(len(COMMANDS))])
def test_readme_command(command: str, workspace: Workspace):
    words = shlex.split(command)
    if words[0] == "sudo":
        if why := _run_sudo(words):
            workspace.stop_server()
            pytest.skip(why)
        words = words[1:]
    if words == ["tools/test.sh"]:
        pytest.skip("it runs this whole suite: the suite cannot run itself (tools/test.sh is "
                    "pytest after tools/setup.sh)")
    if words == ["tools/demo.sh"]:
        # set-up skipped: it would reinstall into the shared .venv
        workspace.run([str(REPO / "tools" / "demo.sh")], cwd=REPO)
        assert (REPO / "gpuprof-out" / "ppocrv4_det" / "report.md").is_file()
        return
    if words[0] != "gpuprof":
        pytest.fail(f"no test runs this README command: {command}")
    if why := _skip_reason(words, workspace):
        pytest.skip(why)
    _run_gpuprof(words, workspace)


def _run_gpuprof(words: list[str], space: Workspace) -> None:
    argv = space.words(shlex.join(words))
    if words[1:3] == ["triton", "serve"]:
        space.start_server(argv)
        return
    if words[1] == "perf":
        if space.server_url is None:
            pytest.fail("a README perf line with no 'gpuprof triton serve' line before it")
        _run_perf(argv, space)
        return
    space.stop_server()
    if words[1] == "net" and words[2] != "--port" and not (space.root / words[2]).exists():
        pytest.skip(f"{words[2]} comes from the capture line above, which did not run here")
    if words[1] == "engine" and "tensorrt" in words and (why := _missing_reason("trt_runtime")):
        pytest.skip(why)
    if "--scheduler" in argv:
        _run_on_a_real_scheduler(argv, space)
    elif words[1] == "nsys" and sum(w.endswith((".sqlite", "/")) for w in words) > 1:
        assert "failed:" not in space.run(argv).stdout  # every export was read
    else:
        space.run(argv)
    for path in _written(argv):
        assert (space.root / path).exists(), f"{shlex.join(words)} did not write {path}"


def _run_perf(argv: list[str], space: Workspace) -> None:
    """A load test against the README's server, once more on a fresh server when the first
    server died or hung of tritonserver 2.51's own trace crash (a use-after-free in its trace
    release that strikes by chance, more often the more requests it traces; its log then
    holds the signal or glibc's heap message: docs/BENCHMARKS.md). The crash is upstream's
    and gpuprof reports it as a partial run; a second failure, or any other, fails here."""
    try:
        space.run(_at_server(argv, space))
    except (AssertionError, subprocess.TimeoutExpired):
        traced = "--trace" in argv or "--net" in argv
        if not (traced and space.server_crashed_tracing()):
            raise
        warnings.warn("tritonserver crashed tracing (its upstream bug): rerun on a fresh server",
                      stacklevel=1)
        space.restart_server()
        space.run(_at_server(argv, space))


def _at_server(argv: list[str], space: Workspace) -> list[str]:
    """The perf line pointed at the server serve chose, with the short windows."""
    return [space.server_url if prev == "-u" else w
            for prev, w in zip(["", *argv], argv, strict=False)] + SHORT_WINDOWS


def _run_on_a_real_scheduler(argv: list[str], space: Workspace) -> None:
    """The README's cluster address stands for a real one: a Dask scheduler with one worker,
    started here for the command."""
    from dask.distributed import LocalCluster

    with LocalCluster(n_workers=1, processes=False, protocol="tcp", dashboard_address=None,
                      host="127.0.0.1") as cluster:
        at = argv.index("--scheduler") + 1
        result = space.run([*argv[:at], cluster.scheduler_address, *argv[at + 1:]])
    assert "failed:" not in result.stdout


def test_readme_python_api(workspace: Workspace):
    """The Python API block, as written, on the same export."""
    code = readme_python()
    assert "gpuprof.load" in code
    if not (workspace.root / "report.sqlite").exists():
        pytest.skip("no shared nsys export with kernels (set GPUPROF_FIXTURES)")
    workspace.run([sys.executable, "-c", code])
    assert (workspace.root / "run.gpuprof").is_file()
    assert (workspace.root / "trace.json").is_file() and (workspace.root / "trace.gpuprof").is_file()


def test_every_readme_command_is_known():
    """Each README command is one a rule above runs (or skips with its reason)."""
    assert COMMANDS, "no bash blocks found in README.md"
    for command in COMMANDS:
        words = shlex.split(command)
        words = words[1:] if words[0] == "sudo" else words
        assert words[0] in ("gpuprof", "tools/demo.sh", "tools/test.sh"), command
