"""Which eBPF program runs, and the one-line refusal (with its fix) for each missing piece.

``choose_program`` decides from ``SystemFacts`` alone, so every refusal is checked here on any
machine; the real facts of this machine are checked in test_net_capture.py (root + bpftrace).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from gpuprof import bpf
from gpuprof.capture.net_preflight import SystemFacts, choose_program
from gpuprof.errors import BadInputError, CaptureError, MissingToolError

READY = SystemFacts(is_root=True, bpftrace="/usr/bin/bpftrace", tracefs=Path("/sys/kernel/tracing"),
                    tracefs_error=None, btf=True, tracepoints=True, kprobes=False)


@pytest.mark.parametrize("facts, requested, error, words", [
    (replace(READY, is_root=False), "auto", CaptureError, ["needs root", "Run gpuprof as root"]),
    (replace(READY, bpftrace=None), "auto", MissingToolError, ["bpftrace is not installed", "apt-get install -y bpftrace"]),
    (replace(READY, tracefs=None, tracefs_error="mount failed: permission denied"), "auto", CaptureError,
     ["tracefs is not mounted", "permission denied", "mount -t tracefs tracefs /sys/kernel/tracing"]),
    (replace(READY, btf=False), "auto", CaptureError, ["no BTF", "CONFIG_DEBUG_INFO_BTF"]),
    (READY, "kprobe", BadInputError, ["no kprobes", "--program tracepoint"]),
    (replace(READY, tracepoints=False, kprobes=True), "tracepoint", BadInputError,
     ["sock:sock_send_length", "--program kprobe"]),
    (replace(READY, tracepoints=False), "auto", CaptureError, ["neither", "CONFIG_KPROBES"]),
    (replace(READY, syscall_tracepoints=False), "auto", CaptureError,
     ["sys_enter_getpgid", "CONFIG_FTRACE_SYSCALLS"]),
    (READY, "uprobe", BadInputError, ["unknown eBPF program", "auto, tracepoint, kprobe"]),
])
def test_refusals_name_the_fix(facts, requested, error, words):
    with pytest.raises(error) as caught:
        choose_program(requested, facts)
    line = caught.value.one_line()
    assert "\n" not in line
    for word in words:
        assert word in line, line


@pytest.mark.parametrize("facts, requested, chosen", [
    (READY, "auto", "tracepoint"),
    (replace(READY, kprobes=True), "auto", "tracepoint"),       # tracepoints preferred
    (replace(READY, tracepoints=False, kprobes=True), "auto", "kprobe"),
    (replace(READY, kprobes=True), "kprobe", "kprobe"),
    (READY, "tracepoint", "tracepoint"),
])
def test_program_choice(facts, requested, chosen):
    assert choose_program(requested, facts) == chosen


def test_program_args_fill_the_slots():
    slots = str(bpf.RUN_SLOTS)
    assert bpf.program_args([123], [8000, 8001]) == (["123", "0", "0", "0", "8000", "8001"]
                                                     + ["0"] * 7 + [slots])
    assert bpf.program_args() == ["0"] * 13 + [slots]
    assert bpf.program_args(sync_id=bpf.SYNC_ID_MIN + 5)[-2] == str(bpf.SYNC_ID_MIN + 5)
    assert bpf.program_args(run_slots=8)[-1] == "8"


@pytest.mark.parametrize("pids, ports, words", [
    ([1, 2, 3, 4, 5], [], "at most 4 pids"),
    ([], list(range(1, 10)), "at most 8 ports"),
    ([], [70000], "not a TCP port"),
    ([0], [], "not a process id"),
    (["1; rm -rf /"], [], "not a process id"),
])
def test_program_args_refuse_bad_values(pids, ports, words):
    with pytest.raises(BadInputError, match=words):
        bpf.program_args(pids, ports)


def test_both_per_call_programs_are_shipped_with_the_same_layout():
    texts = {name: bpf.program_path(name).read_text() for name in ("tracepoint", "kprobe")}
    for name, text in texts.items():
        assert f"program={name} layout=1" in text
        for column in bpf.COLUMNS:
            assert f'"{column}"' in text, (name, column)


def test_the_runs_program_prints_what_the_parser_reads():
    text = bpf.program_path("runs").read_text()
    assert "program=tracepoint layout=runmaps" in text
    # every place a run ends keeps it under its key (socket, first time), in both maps
    assert text.count("@fin0[$k, $r.1] = $v;") == text.count("@fin1[$k, $r.1] = $v;") == 6
    value = "$v = ($r.0, $r.5, $r.6, $r.7, $r.8, $r.1, $r.2, $r.3, $r.4, "
    assert text.count(value) == 3      # DIR PID TID LPORT RPORT FIRST LAST CALLS BYTES
    assert text.count("print(@fin0);") == text.count("print(@fin1);") == 2
    assert text.count("print(@lost_runs);") == 2
