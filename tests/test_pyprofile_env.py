"""GPUPROF_OUTPUT_PATH on an unmodified script, through the real start-up hook: a fresh venv
(``--system-site-packages``) gets the shipped ``gpuprof_autostart.pth`` in its site-packages,
exactly where a wheel install puts it, and runs the script as a subprocess. Files are written
at exit, after sys.exit, on Ctrl-C and on SIGTERM; a failing profiler never breaks the program.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import sysconfig
import textwrap
from pathlib import Path

import numpy as np
import pytest

import gpuprof

from .conftest import CLS_MODEL, REPO

HOOK = REPO / "gpuprof" / "gpuprof_autostart.pth"
APP = textwrap.dedent(f"""
    import shutil, sys, time
    import numpy as np
    import onnxruntime as ort

    session = ort.InferenceSession({str(CLS_MODEL)!r}, providers=["CPUExecutionProvider"])
    feeds = {{session.get_inputs()[0].name: np.zeros((1, 3, 48, 192), np.float32)}}
    for _ in range(int(sys.argv[1])):
        session.run(None, feeds)
    print("done", flush=True)
    mode = sys.argv[2] if len(sys.argv) > 2 else ""
    if mode == "own-profile":  # the program profiles itself too
        import gpuprof
        with gpuprof.profile(output="own.json") as prof:
            with prof.record("mine"):
                session.run(None, feeds)
        print(len(prof.inferences()), flush=True)
    if mode == "wait":
        time.sleep(60)
    if mode == "exit3":
        sys.exit(3)
    if mode == "replace-output-folder":  # by a file: the profiler cannot write there at exit
        shutil.rmtree(sys.argv[3])
        open(sys.argv[3], "w").close()
""")


@pytest.fixture(scope="module")
def python(tmp_path_factory) -> str:
    """A fresh venv's interpreter with the hook installed; this environment's packages via a
    path file (listed before the hook, as site-packages would hold them)."""
    if not CLS_MODEL.exists():
        pytest.skip("models/ppocr_mobile_v2_cls.onnx not found (run tools/fetch_models.py)")
    venv = tmp_path_factory.mktemp("venv")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", "--system-site-packages",
                    str(venv)], check=True, timeout=120)
    exe = venv / "bin" / "python"
    site = subprocess.run([str(exe), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    Path(site, "a_outer_env.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    shutil.copy(HOOK, Path(site) / HOOK.name)
    return str(exe)


def _env(output: Path | None) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GPUPROF_")}
    env["PYTHONPATH"] = str(REPO)
    if output is not None:
        env["GPUPROF_OUTPUT_PATH"] = str(output)
    return env


def _app(tmp_path: Path) -> Path:
    app = tmp_path / "app.py"
    app.write_text(APP)
    return app


def _run(python, tmp_path, output, *args, timeout=120):
    return subprocess.run([python, str(_app(tmp_path)), *args], env=_env(output), cwd=tmp_path,
                          capture_output=True, text=True, timeout=timeout)


def _inferences(output: Path):
    return gpuprof.load(output.with_suffix(".gpuprof")).inferences()


def test_unmodified_script_is_profiled_as_one_record(python, tmp_path):
    output = tmp_path / "trace.json"
    done = _run(python, tmp_path, output, "4")
    assert done.returncode == 0, done.stderr
    assert done.stdout == "done\n"
    table = _inferences(output)
    assert len(table) == 4 and set(table["record"]) == {"app.py"}
    assert output.exists() and "4 inference calls profiled" in done.stderr


def test_ort_node_profile_is_written_at_exit(python, tmp_path):
    """Hundreds of node rows: writing them uses pyarrow's thread pool, which refuses work in
    plain atexit handlers; the hook's exit handler runs before that."""
    output = tmp_path / "trace.json"
    env = _env(output) | {"GPUPROF_ORT_NODES": "1"}
    done = subprocess.run([python, str(_app(tmp_path)), "4"], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "profiling failed" not in done.stderr, done.stderr
    run = gpuprof.load(output.with_suffix(".gpuprof"))
    assert sorted(set(run.layer_timings["iteration"])) == [0, 1, 2, 3]
    assert run.operators()["count"].sum() == len(run.layer_timings) > 700


def test_program_with_its_own_profile_runs_inside_the_whole_program_one(python, tmp_path):
    output = tmp_path / "trace.json"
    done = _run(python, tmp_path, output, "2", "own-profile")
    assert done.returncode == 0 and done.stdout == "done\n1\n", done.stderr
    assert "runs inside it" in done.stderr
    assert len(_inferences(output)) == 3  # the whole program's: its own profile's call too
    assert len(_inferences(tmp_path / "own.json")) == 1


def test_unset_variable_does_nothing(python, tmp_path):
    done = _run(python, tmp_path, None, "2")
    assert done.returncode == 0 and done.stderr == ""
    assert not list(tmp_path.glob("*.json")) and not list(tmp_path.glob("*.gpuprof"))


def test_exit_code_is_kept_and_files_written(python, tmp_path):
    output = tmp_path / "trace.json"
    done = _run(python, tmp_path, output, "3", "exit3")
    assert done.returncode == 3
    assert len(_inferences(output)) == 3


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_still_writes_the_files(python, tmp_path, sig):
    output = tmp_path / "trace.json"
    proc = subprocess.Popen([python, str(_app(tmp_path)), "5", "wait"], env=_env(output),
                            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline() == "done\n"
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    # SIGTERM keeps its meaning in the exit status; Ctrl-C is Python's KeyboardInterrupt
    assert proc.returncode in ((-signal.SIGTERM,) if sig == signal.SIGTERM else (1, -signal.SIGINT))
    assert len(_inferences(output)) == 5, err
    assert output.exists()


def test_profiler_failing_at_start_never_breaks_the_program(python, tmp_path):
    done = _run(python, tmp_path, tmp_path / "missing" / "trace.json", "2")
    assert done.returncode == 0 and done.stdout == "done\n"
    lines = [line for line in done.stderr.splitlines() if line.startswith("gpuprof:")]
    assert len(lines) == 1 and "does not exist" in lines[0] and "runs unprofiled" in lines[0]


def test_profiler_failing_at_exit_never_breaks_the_program(python, tmp_path):
    folder = tmp_path / "out"
    folder.mkdir()
    done = _run(python, tmp_path, folder / "trace.json", "2", "replace-output-folder", str(folder))
    assert done.returncode == 0 and done.stdout == "done\n"
    lines = [line for line in done.stderr.splitlines() if line.startswith("gpuprof:")]
    assert len(lines) == 1 and "profiling failed" in lines[0]
    assert "Traceback" not in done.stderr


def test_wheel_build_puts_the_hook_at_the_top_of_site_packages(tmp_path):
    """setup.py's build step copies the hook into the build folder's root, the root of the
    wheel: what pip installs into site-packages."""
    build = tmp_path / "build"
    subprocess.run([sys.executable, "setup.py", "-q", "build_py", "--build-lib", str(build)],
                   cwd=REPO, check=True, capture_output=True, timeout=120)
    assert (build / HOOK.name).read_text() == HOOK.read_text()
    shutil.rmtree(REPO / "build", ignore_errors=True)  # nothing left in the checkout


# -- gpuprof run --------------------------------------------------------------------------

def _gpuprof(*args: str) -> list[str]:
    return [sys.executable, "-m", "gpuprof", "run", *args]


def test_gpuprof_run_passes_the_exit_code_and_reports_the_saved_run(python, tmp_path):
    report = tmp_path / "report.json"
    done = subprocess.run(_gpuprof("--trace", str(tmp_path / "t.json"), "-o", str(report), "--",
                                   python, str(_app(tmp_path)), "6", "exit3"),
                          env=_env(None), cwd=tmp_path, capture_output=True, text=True, timeout=180)
    assert done.returncode == 3, done.stderr
    assert "nsys: not found, profiled without it" in done.stderr
    sections = {s["key"]: s for s in json.loads(report.read_text())["sections"]}
    printed = {row["statistic"]: row["latency_ns"] for row in sections["summary"]["rows"]}
    latency = gpuprof.load(tmp_path / "t.gpuprof").inferences()["latency_ns"].to_numpy()
    assert printed["count"] == len(latency) == 6
    for name, q in [("median", 50), ("p97", 97), ("p99.9", 99.9)]:  # JSON: raw, unrounded ns
        assert printed[name] == pytest.approx(np.percentile(latency, q), rel=1e-12), name
    assert sections["records"]["rows"][0]["record"] == "app.py"


def test_gpuprof_run_nsys_on_without_nsys_is_one_clear_line(python, tmp_path):
    if shutil.which("nsys"):
        pytest.skip("nsys is installed here")
    done = subprocess.run(_gpuprof("--nsys", "on", "--", python, "-c", "pass"), env=_env(None),
                          cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert done.returncode == 3
    assert done.stderr.strip().splitlines() == [
        line for line in done.stderr.strip().splitlines() if line.startswith("Error: ")]
    assert "nsys" in done.stderr


def test_gpuprof_run_without_the_hook_says_what_to_do(tmp_path):
    done = subprocess.run(_gpuprof("--", sys.executable, "-S", "-c", "pass"), env=_env(None),
                          cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert done.returncode == 4
    error = [line for line in done.stderr.splitlines() if line.startswith("Error: ")]
    assert len(error) == 1 and "wrote no profile" in error[0] and "gpuprof_autostart.pth" in error[0]


def test_gpuprof_run_ctrl_c_reaches_the_program_and_leaves_no_orphan(python, tmp_path):
    proc = subprocess.Popen(_gpuprof("--trace", str(tmp_path / "t.json"), "--", python,
                                     str(_app(tmp_path)), "3", "wait"),
                            env=_env(None), cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        assert proc.stdout.readline() == "done\n"
        child = _child_of(proc.pid)
        proc.send_signal(signal.SIGINT)  # what the terminal sends to gpuprof's group
        out, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    # the program's own exit status after Ctrl-C (Python's: 1, or 130 when killed by SIGINT)
    assert proc.returncode in (1, 128 + signal.SIGINT), err
    assert "Inference summary" in out and "KeyboardInterrupt" in err
    assert len(gpuprof.load(tmp_path / "t.gpuprof").inferences()) == 3
    assert not Path(f"/proc/{child}").exists()


def _child_of(pid: int) -> int:
    import psutil

    children = psutil.Process(pid).children()
    assert len(children) == 1
    return children[0].pid


def test_gpuprof_run_command_line_under_nsys(tmp_path):
    from gpuprof.pipeline.profile_run import choose_nsys, program_argv

    argv = program_argv(["python", "app.py", "-x"], "/opt/nsys/bin/nsys", tmp_path / "t-nsys")
    assert argv[:4] == ["/opt/nsys/bin/nsys", "profile", "--capture-range=cudaProfilerApi",
                        "--capture-range-end=none"]
    assert argv[-3:] == ["python", "app.py", "-x"] and str(tmp_path / "t-nsys") in argv
    assert program_argv(["python", "app.py"], None, tmp_path / "t") == ["python", "app.py"]
    assert choose_nsys("off") == (None, "nsys: off (--nsys off)")
