"""Doctor's answers for machines unlike this one. The eBPF probes take
``net_preflight.SystemFacts`` (not root, no tracefs, no bpftrace, no BTF, kprobes only), as
test_net_preflight.py checks the preflight; a GPU's line and the driver banner are plain
functions of what NVML and the kernel say. This machine's own answers: test_doctor_probes.py."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from gpuprof.capture import doctor_ebpf, doctor_gpu
from gpuprof.capture.doctor_checks import MISSING, OK, PARTIAL, Part
from gpuprof.capture.net_preflight import SystemFacts

READY = SystemFacts(is_root=True, bpftrace="/usr/bin/bpftrace", tracefs=Path("/sys/kernel/tracing"),
                    tracefs_error=None, btf=True, tracepoints=True, kprobes=False)
PART = Part("x", "eBPF", "x")
# a non-root user cannot see tracefs, so nothing below it is known
NOT_ROOT = replace(READY, is_root=False, tracefs=None, tracefs_error="not root, so not mounted",
                   tracepoints=False, kprobes=False, syscall_tracepoints=False)


def test_ready_machine_runs_the_tracepoint_program():
    check = doctor_ebpf.capture(PART, READY)
    assert (check.status, check.facts) == (OK, {"program": "tracepoint"})


def test_kprobes_only_kernel_runs_the_kprobe_program():
    check = doctor_ebpf.capture(PART, replace(READY, tracepoints=False, kprobes=True))
    assert check.facts == {"program": "kprobe"}
    assert doctor_ebpf.tracepoints(PART, replace(READY, tracepoints=False)).status == MISSING


def test_not_root_says_needs_root_and_knows_nothing_below_tracefs():
    assert doctor_ebpf.root(PART, uid=1000).status == MISSING
    tracefs = doctor_ebpf.tracefs(PART, NOT_ROOT)
    assert tracefs.status == MISSING and "needs root" in tracefs.detail
    for probe in (doctor_ebpf.tracepoints, doctor_ebpf.kprobes):
        check = probe(PART, NOT_ROOT)
        assert check.status == MISSING and "cannot tell" in check.detail
        assert set(check.facts.values()) == {None}
    capture = doctor_ebpf.capture(PART, NOT_ROOT)
    assert capture.status == MISSING and "needs root" in capture.detail
    assert capture.fix == doctor_ebpf.ROOT_FIX


def test_root_without_tracefs_is_partial_because_a_capture_mounts_it():
    found = replace(READY, tracefs=None, tracefs_error="not mounted yet: a capture mounts it",
                    tracepoints=False, syscall_tracepoints=False)
    check = doctor_ebpf.tracefs(PART, found)
    assert check.status == PARTIAL and check.fix == doctor_ebpf.TRACEFS_FIX


@pytest.mark.parametrize("found, fixes", [
    (replace(NOT_ROOT, bpftrace=None), [doctor_ebpf.ROOT_FIX, doctor_ebpf.BPFTRACE_FIX]),
    (replace(READY, bpftrace=None, btf=False), [doctor_ebpf.BPFTRACE_FIX, doctor_ebpf.KERNEL_FIX]),
    # the parts are all here but the kernel lacks the stop marker: the preflight's own hint
    (replace(READY, syscall_tracepoints=False), ["CONFIG_FTRACE_SYSCALLS=y"]),
])
def test_capture_fix_names_every_missing_step(found, fixes):
    check = doctor_ebpf.capture(PART, found)
    assert check.status == MISSING
    assert all(fix in check.fix for fix in fixes), check.fix


def test_missing_bpftrace_and_btf_each_say_how_to_get_them():
    assert doctor_ebpf.bpftrace(PART, replace(READY, bpftrace=None)).fix == "apt-get install -y bpftrace"
    assert "CONFIG_DEBUG_INFO_BTF" in doctor_ebpf.btf(PART, replace(READY, btf=False)).fix


@pytest.mark.parametrize("banner, version", [
    ("NVRM version: NVIDIA UNIX x86_64 Kernel Module  535.104.05  Sat Aug 19 01:15:15 UTC 2023", "535.104.05"),
    ("NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  580.65.06  Release Build", "580.65.06"),
])
def test_driver_version_from_both_module_banners(banner, version):
    assert doctor_gpu.parse_module_version(banner + "\nGCC version:  gcc version 12.2.0\n") == version


def test_a_gpu_line_shows_clocks_persistence_and_ecc_and_says_unknown():
    gpu = {"device_id": 0, "name": "NVIDIA H100 80GB HBM3", "compute_capability": "9.0",
           "memory_bytes": 85_520_809_984, "sm_clock_mhz": 345, "max_sm_clock_mhz": 1980,
           "memory_clock_mhz": 2619, "max_memory_clock_mhz": 2619, "persistence_mode": True,
           "ecc_mode": None}
    assert doctor_gpu.describe_gpu(gpu) == (
        "GPU 0: NVIDIA H100 80GB HBM3, compute capability 9.0, 79.6 GiB, SM clock 345 of 1980 MHz, "
        "memory clock 2619 of 2619 MHz, persistence on, ECC unknown")


@pytest.mark.parametrize("encoded, text", [(13040, "13.4"), (12080, "12.8"), (0, None), (None, None)])
def test_cuda_version_spelling(encoded, text):
    assert doctor_gpu.cuda_version(encoded) == text
