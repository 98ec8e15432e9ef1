"""Which gpuprof commands run on this machine, from the doctor's checks alone (pure).

Each command lists what it needs. An essential need unmet: the command does not run. An
optional one unmet: it runs, without what that need gives (said in words). A need is met by
any of its alternatives, an alternative when each of its checks reaches the need's minimum
status ("partial" where an incomplete part is enough, e.g. nsys that exports but cannot
profile here).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from .doctor_checks import MISSING, OK, PARTIAL, Check

FULL, PARTLY, NO = "full", "partial", "no"
RANK = {MISSING: 0, PARTIAL: 1, OK: 2}


@dataclass(frozen=True)
class Need:
    alternatives: tuple[tuple[str, ...], ...]  # check names; any one group, all of its checks
    without: str                               # what the command cannot do when this is unmet
    essential: bool = False
    minimum: str = OK


@dataclass(frozen=True)
class Command:
    name: str         # stable id
    usage: str        # how it is typed
    needs: tuple[Need, ...]


TRT_ENGINE = ("tensorrt_usable", "cuda_runtime")
COMMANDS = (
    Command("nsys", "gpuprof nsys EXPORT", (
        Need((("nsys",),), ".nsys-rep reports need nsys to open; .sqlite exports and saved runs open without it",
             minimum=PARTIAL),)),
    Command("build", "gpuprof build MODEL.onnx", (
        Need((("tensorrt",), ("tensorrt_rtx",)), "no TensorRT builder", essential=True, minimum=PARTIAL),
        Need((("tensorrt",),), "TensorRT-RTX only: --fp16/--bf16/--int8/--best need full TensorRT",
             minimum=PARTIAL))),
    Command("engine", "gpuprof engine MODEL.onnx", (
        Need((("onnxruntime",), TRT_ENGINE), "no backend can run a model", essential=True, minimum=PARTIAL),
        Need((TRT_ENGINE,), "runs on ONNX Runtime, not TensorRT: no TensorRT layers or GPU kernels"),
        Need(((*TRT_ENGINE, "nsys"),), "no GPU kernels per TensorRT layer (needs nsys profiling)"))),
    Command("triton", "gpuprof triton TRACE", ()),
    Command("triton serve", "gpuprof triton serve MODEL.onnx", (
        Need((("tritonserver",),), "no bundled tritonserver", essential=True),
        Need((("onnxruntime",),), "the served model runs on ONNX Runtime", essential=True,
             minimum=PARTIAL))),
    Command("perf", "gpuprof perf -m MODEL -u HOST:PORT", (
        Need((("tritonclient",),), "no Triton client", essential=True, minimum=PARTIAL),
        Need((("tritonclient",),), "one protocol only (-i http or -i grpc)"))),
    Command("perf --net", "gpuprof perf --net -m MODEL -u HOST:PORT", (
        Need((("tritonclient",),), "no Triton client", essential=True, minimum=PARTIAL),
        Need((("ebpf_capture",),), "no eBPF capture of the requests' TCP calls", essential=True))),
    Command("net", "gpuprof net", (
        Need((("ebpf_capture",),), "cannot capture; reports on saved captures only (gpuprof net FILE)"),)),
    Command("run", "gpuprof run -- python app.py", (
        Need((("nsys",),), "runs without nsys: the program's inference calls, no GPU kernels"),)),
    # reading files gpuprof or trtexec wrote needs nothing beyond gpuprof itself
    Command("open", "gpuprof open RUN", ()),
    Command("diff", "gpuprof diff RUN_A RUN_B", ()),
    Command("trtexec", "gpuprof trtexec --layer-info FILE", ()),
)


@dataclass(frozen=True)
class Readiness:
    command: Command
    readiness: str                    # full | partial | no
    unmet: tuple[tuple[Need, tuple[str, ...]], ...]  # each unmet need and the checks it lacks
    fixes: tuple[str, ...]


def readiness(checks: Iterable[Check], commands: Iterable[Command] = COMMANDS) -> list[Readiness]:
    by_name = {check.name: check for check in checks}
    return [_one(command, by_name) for command in commands]


def registered(names: Iterable[str], commands: Iterable[Command] = COMMANDS) -> list[Command]:
    """The rows of the commands this gpuprof has (``triton serve`` is a row of ``triton``)."""
    have = set(names)
    return [command for command in commands if command.name.split()[0] in have]


def _one(command: Command, checks: Mapping[str, Check]) -> Readiness:
    unmet = [(need, lacking) for need in command.needs if (lacking := _lacking(need, checks))]
    if any(need.essential for need, _ in unmet):
        level = NO
    else:
        level = PARTLY if unmet else FULL
    fixes = dict.fromkeys(fix for _, lacking in unmet for name in lacking
                          if (fix := _fix(checks.get(name))))
    return Readiness(command, level, tuple(unmet), tuple(fixes))


def _lacking(need: Need, checks: Mapping[str, Check]) -> tuple[str, ...]:
    """() when the need is met, else the failing checks of its closest alternative."""
    failing = [tuple(name for name in group if not _reaches(checks.get(name), need.minimum))
               for group in need.alternatives]
    return min(failing, key=len) if failing else ()


def _reaches(check: Check | None, minimum: str) -> bool:
    return check is not None and RANK[check.status] >= RANK[minimum]


def _fix(check: Check | None) -> str | None:
    if check is None:
        return None
    return check.fix
