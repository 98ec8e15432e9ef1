"""``gpuprof doctor`` end to end: the JSON schema, every printed line, the command verdicts on
this machine against an independent look, and the answer (never a traceback) when a part is
really absent: bpftrace off PATH, or not root (a user namespace)."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from gpuprof.capture.doctor import PROBES, SCHEMA_VERSION
from gpuprof.capture.doctor_commands import registered
from gpuprof.cli.main import main
from gpuprof.render.doctor import MARKS, READINESS
from tests.conftest import REPO

SNAKE = re.compile(r"^[a-z][a-z0-9_]*$")


def _doctor(*args: str, env: dict[str, str] | None = None, prefix: tuple[str, ...] = ()):
    environ = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}
    return subprocess.run([*prefix, sys.executable, "-m", "gpuprof", "doctor", *args], capture_output=True,
                          text=True, timeout=120, env=environ, cwd=REPO)


@pytest.fixture(scope="module")
def doc() -> dict:
    done = _doctor("--json")
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    return json.loads(done.stdout)


def _keys(value, path="") -> list[str]:
    if isinstance(value, dict):
        return [k for key, item in value.items() for k in [f"{path}{key}", *_keys(item, f"{path}{key}.")]]
    if isinstance(value, list):
        return [k for item in value for k in _keys(item, path)]
    return []


def test_json_schema(doc):
    assert doc["schema_version"] == SCHEMA_VERSION
    assert all(SNAKE.match(key.rsplit(".", 1)[-1]) for key in _keys(doc)), _keys(doc)
    assert [c["name"] for c in doc["checks"]] == [part.name for part, _ in PROBES]
    from gpuprof.cli.main import COMMANDS as REGISTERED

    assert [c["name"] for c in doc["commands"]] == [c.name for c in registered(REGISTERED)]
    for check in doc["checks"]:
        assert set(check) == {"name", "group", "title", "status", "detail", "fix", "notes", "facts"}
        assert check["status"] in MARKS and (check["fix"] is None) == (check["status"] == "ok")
    for command in doc["commands"]:
        assert command["readiness"] in READINESS
        assert (command["readiness"] == "full") == (command["missing"] == [])


def test_unknown_is_null_never_a_made_up_value(doc):
    """Where a part is absent its facts are null (or false for yes/no questions), never 0 or ''."""
    for check in doc["checks"]:
        if check["status"] == "missing":
            for key, value in check["facts"].items():
                made_up = type(value) is not bool and value in (0, "")
                assert not made_up or key == "uid", (check["name"], key)


def test_every_printed_line_comes_from_the_document(capsys):
    assert main(["doctor", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert main(["doctor"]) == 0
    lines = capsys.readouterr().out.splitlines()
    titles = {c["name"]: c["title"] for c in doc["checks"]}
    expected = {"Commands", ""} | {c["group"] for c in doc["checks"]}
    for c in doc["checks"]:
        expected |= {(MARKS[c["status"]], c["title"], c["detail"]), *c["notes"], f"fix: {c['fix']}"}
    for command in doc["commands"]:
        expected |= {(command["usage"], READINESS[command["readiness"]]), *(f"fix: {f}" for f in command["fixes"])}
        expected |= {f"- {m['without']} (lacks: {', '.join(titles[n] for n in m['checks'])})"
                     for m in command["missing"]}
    assert lines[0].startswith(f"gpuprof doctor (schema {SCHEMA_VERSION})")
    for line in lines[1:]:
        assert line.strip() in expected or _row(line, expected), line
    shown = "\n".join(lines)
    for c in doc["checks"]:
        assert c["detail"] in shown and all(note in shown for note in c["notes"])
        assert c["fix"] is None or c["fix"] in shown
    for command in doc["commands"]:
        assert all(fix in shown for fix in command["fixes"])


def _row(line: str, expected: set) -> bool:
    """A check row (mark, title, detail) or a command row (usage, readiness), as laid out."""
    text = line.strip()
    for item in expected:
        if isinstance(item, tuple) and re.fullmatch(r"\s+".join(map(re.escape, item)), text):
            return True
    return False


def _gpus_in_kernel() -> int:
    folder = Path("/proc/driver/nvidia/gpus")
    return len(list(folder.iterdir())) if folder.is_dir() else 0


def _imports(module: str) -> bool:
    return subprocess.run([sys.executable, "-c", f"import {module}"], capture_output=True,
                          timeout=60).returncode == 0


def _tracepoints() -> bool:
    wanted = {"sock:sock_send_length", "sock:sock_recv_length", "syscalls:sys_enter_getpgid"}
    for folder in ("/sys/kernel/tracing", "/sys/kernel/debug/tracing"):
        with_events = Path(folder, "available_events")
        if with_events.is_file():
            return wanted <= set(with_events.read_text().split())
    return False


def test_command_verdicts_on_this_machine(doc):
    ready = {c["name"]: c["readiness"] for c in doc["commands"]}
    ebpf = os.geteuid() == 0 and shutil.which("bpftrace") is not None and _tracepoints() \
        and Path("/sys/kernel/btf/vmlinux").is_file()
    if ebpf:
        assert ready["net"] == "full"
    http, grpc = _imports("tritonclient.http"), _imports("tritonclient.grpc")
    assert ready["perf"] == ("full" if http and grpc else "partial" if http or grpc else "no")
    if http and ebpf:
        assert ready["perf --net"] == "full"
    assert ready["triton"] == "full"
    assert ready["nsys"] == ("partial" if shutil.which("nsys") is None else "full")
    if not _gpus_in_kernel():
        # no GPU: ONNX Runtime runs the model, TensorRT does not
        assert ready["engine"] == ("partial" if _imports("onnxruntime") else "no")
    builders = [m for m in ("tensorrt", "tensorrt_rtx") if importlib.util.find_spec(m) is not None
                and _imports(f"{m}; assert hasattr({m}, 'Builder')")]
    assert ready["build"] == ("full" if "tensorrt" in builders else "partial" if builders else "no")


def test_bpftrace_off_path_is_an_answer_not_an_error():
    """A real absence: bpftrace is not on this PATH."""
    done = _doctor("--json", env={"PATH": str(Path(sys.executable).parent)})
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    doc = json.loads(done.stdout)
    checks = {c["name"]: c for c in doc["checks"]}
    assert checks["bpftrace"]["status"] == "missing" and checks["bpftrace"]["facts"]["path"] is None
    assert checks["ebpf_capture"]["status"] == "missing"
    assert "apt-get install -y bpftrace" in checks["ebpf_capture"]["fix"]
    ready = {c["name"]: c for c in doc["commands"]}
    assert ready["net"]["readiness"] == "partial" and ready["perf --net"]["readiness"] == "no"
    assert any("apt-get install -y bpftrace" in fix for fix in ready["net"]["fixes"])


def _user_namespace() -> tuple[str, ...] | None:
    """unshare as an ordinary user id whose files are still ours (so the venv stays readable)."""
    unshare = shutil.which("unshare")
    if unshare is None or os.geteuid() != 0:
        return None
    prefix = (unshare, "--user", "--map-user=1000", "--map-group=1000")
    probe = subprocess.run([*prefix, "id", "-u"], capture_output=True, text=True, timeout=30)
    return prefix if probe.returncode == 0 and probe.stdout.strip() == "1000" else None


def test_without_root_doctor_says_needs_root():
    prefix = _user_namespace()
    if prefix is None:
        pytest.skip("needs root and unshare --user to run doctor as another user")
    done = _doctor("--json", prefix=prefix)
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    doc = json.loads(done.stdout)
    checks = {c["name"]: c for c in doc["checks"]}
    assert checks["root"]["status"] == "missing" and checks["root"]["facts"]["uid"] == 1000
    assert checks["ebpf_capture"]["status"] == "missing" and "root" in checks["ebpf_capture"]["fix"]
    ready = {c["name"]: c["readiness"] for c in doc["commands"]}
    assert ready["net"] == "partial" and ready["perf --net"] == "no"


@pytest.mark.parametrize("width", [80, 120])
def test_a_terminal_wraps_lines_under_their_column_and_loses_no_word(width):
    from gpuprof.capture.doctor import document, examine
    from gpuprof.render.doctor import render_doctor

    doc = document(examine())
    flat, wrapped = render_doctor(doc), render_doctor(doc, width)
    assert wrapped.split() == flat.split()
    for line in wrapped.splitlines():
        # only a word longer than the room under its column (a path, a URL) may pass the width
        room = width - (len(line) - len(line.lstrip()))
        assert len(line) <= width or len(line.split()[-1]) > room or len(line.split()) == 1, line


def test_verdicts_agree_with_what_the_commands_themselves_decide(doc, tmp_path):
    """Each command's own start-up decision, taken the way the command takes it."""
    from gpuprof.capture.net_preflight import choose_program, system_facts
    from gpuprof.capture.ort.fallback import choose_backend
    from gpuprof.capture.triton_backends import find_triton
    from gpuprof.capture.trt import api
    from gpuprof.errors import GpuprofError

    def works(step) -> bool:
        try:
            step()
        except GpuprofError:
            return False
        return True

    ready = {c["name"]: c for c in doc["commands"]}
    engine_on_trt = choose_backend("auto")[0] == "tensorrt"
    assert engine_on_trt == (not any("not TensorRT" in m["without"] for m in ready["engine"]["missing"]))
    assert works(api.builder_module) == (ready["build"]["readiness"] != "no")
    assert works(lambda: find_triton(tmp_path)) == (ready["triton serve"]["readiness"] != "no")
    capture = works(lambda: choose_program("auto", system_facts(mount=False)))
    assert capture == (ready["net"]["readiness"] == "full")
