"""``gpuprof doctor``: look at this machine (the probes) and say what each command can do.

``examine`` runs every probe in display order; ``document`` turns the checks and the command
table into the one structure both the screen and ``--json`` are made from.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from . import doctor_ebpf, doctor_gpu, doctor_tools, doctor_trt
from .doctor_checks import Check, Part, Probe, package_version, run_probes
from .doctor_commands import COMMANDS, Command, Readiness, readiness, registered

SCHEMA_VERSION = 1

PROBES: tuple[tuple[Part, Probe], ...] = (
    (Part("python", "gpuprof", "Python"), doctor_tools.python),
    (Part("gpuprof", "gpuprof", "gpuprof"), doctor_tools.gpuprof),
    (Part("nvidia_driver", "NVIDIA GPU", "NVIDIA driver"), doctor_gpu.driver),
    (Part("nvml", "NVIDIA GPU", "NVML"), doctor_gpu.nvml),
    (Part("gpus", "NVIDIA GPU", "GPUs"), doctor_gpu.gpus),
    (Part("cuda_runtime", "NVIDIA GPU", "CUDA runtime"), doctor_gpu.cuda_runtime),
    (Part("tensorrt", "TensorRT", "TensorRT"), doctor_trt.flavour("tensorrt")),
    (Part("tensorrt_rtx", "TensorRT", "TensorRT-RTX"), doctor_trt.flavour("tensorrt_rtx")),
    (Part("tensorrt_lean", "TensorRT", "lean runtime"), doctor_trt.flavour("tensorrt_lean")),
    (Part("tensorrt_usable", "TensorRT", "TensorRT usable"), doctor_trt.tensorrt_usable),
    (Part("nsys", "Nsight Systems", "nsys"), doctor_trt.nsys),
    (Part("root", "eBPF", "root"), doctor_ebpf.root),
    (Part("bpftrace", "eBPF", "bpftrace"), doctor_ebpf.bpftrace),
    (Part("tracefs", "eBPF", "tracefs"), doctor_ebpf.tracefs),
    (Part("btf", "eBPF", "kernel BTF"), doctor_ebpf.btf),
    (Part("tracepoints", "eBPF", "tracepoints"), doctor_ebpf.tracepoints),
    (Part("kprobes", "eBPF", "kprobes"), doctor_ebpf.kprobes),
    (Part("ebpf_capture", "eBPF", "capture runs"), doctor_ebpf.capture),
    (Part("tritonserver", "Triton", "tritonserver"), doctor_tools.tritonserver),
    (Part("tritonclient", "Triton", "tritonclient"), doctor_tools.tritonclient),
    (Part("onnxruntime", "ONNX Runtime", "onnxruntime"), doctor_tools.onnxruntime),
    (Part("chromium", "Browser", "Chromium"), doctor_tools.chromium),
)


def examine(reraise: bool = False) -> list[Check]:
    doctor_ebpf.facts.cache_clear()  # look again on every run
    return run_probes(PROBES, reraise=reraise)


def document(checks: Sequence[Check], command_names: Sequence[str] | None = None) -> dict[str, Any]:
    """The doctor's answer as plain data: snake_case keys, None (JSON null) where unknown.
    ``command_names``: the commands this gpuprof registers (default: every row of the table)."""
    commands: Sequence[Command] = COMMANDS if command_names is None else registered(command_names)
    ready = readiness(checks, commands)
    return {
        "schema_version": SCHEMA_VERSION,
        "gpuprof_version": package_version("gpuprof"),
        "checks": [_check(check) for check in checks],
        "commands": [_command(row) for row in ready],
    }


def _check(check: Check) -> dict[str, Any]:
    return {"name": check.name, "group": check.group, "title": check.title, "status": check.status,
            "detail": check.detail, "fix": check.fix, "notes": list(check.notes), "facts": check.facts}


def _command(row: Readiness) -> dict[str, Any]:
    return {"name": row.command.name, "usage": row.command.usage, "readiness": row.readiness,
            "missing": [{"without": need.without, "essential": need.essential, "checks": list(lacking)}
                        for need, lacking in row.unmet],
            "fixes": list(row.fixes)}
