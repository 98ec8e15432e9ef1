"""Doctor probes for eBPF capture (``gpuprof net``, ``gpuprof perf --net``).

The facts and the final decision are ``net_preflight``'s, the ones a capture acts on. One
difference: doctor never mounts tracefs (a capture does, as root, when it starts).
"""

from __future__ import annotations

import dataclasses
import functools
import os

from ..errors import GpuprofError
from . import net_preflight
from .doctor_checks import MISSING, OK, PARTIAL, Check, Part, first_line, tool_output

ROOT_FIX = "Run it as root (e.g. sudo gpuprof ...)"
BPFTRACE_FIX = "apt-get install -y bpftrace"
TRACEFS_FIX = "mount -t tracefs tracefs /sys/kernel/tracing (as root)"
KERNEL_FIX = "A kernel built with CONFIG_DEBUG_INFO_BTF=y"


@functools.lru_cache(maxsize=1)
def facts() -> net_preflight.SystemFacts:
    """This machine's eBPF facts, looked at once per doctor run (``facts.cache_clear()``).
    Each probe also takes facts as an argument, so every branch is testable on any machine."""
    found = net_preflight.system_facts(mount=False)
    if found.tracefs is None and found.is_root:
        # a capture mounts it when it starts; doctor only looks
        found = dataclasses.replace(found, tracefs_error="not mounted yet: a capture mounts it")
    return found


def root(part: Part, uid: int | None = None) -> Check:
    uid = os.geteuid() if uid is None else uid
    if uid == 0:
        return part.check(OK, "running as root", facts={"uid": uid})
    return part.check(MISSING, f"not root (uid {uid}): eBPF capture needs root", ROOT_FIX, {"uid": uid})


def bpftrace(part: Part, found: net_preflight.SystemFacts | None = None) -> Check:
    path = (found or facts()).bpftrace
    if path is None:
        return part.check(MISSING, "bpftrace is not on PATH", BPFTRACE_FIX, {"path": None, "version": None})
    version = first_line(tool_output([path, "--version"]))
    return part.check(OK, f"{version or 'version unknown'} ({path})", facts={"path": path, "version": version})


def tracefs(part: Part, found: net_preflight.SystemFacts | None = None) -> Check:
    found = found or facts()
    if found.tracefs is not None:
        return part.check(OK, f"mounted at {found.tracefs}", facts={"path": str(found.tracefs)})
    if found.is_root:
        return part.check(PARTIAL, "not mounted; gpuprof mounts it when a capture starts", TRACEFS_FIX,
                          {"path": None})
    return part.check(MISSING, "not visible without root (needs root)", ROOT_FIX, {"path": None})


def btf(part: Part, found: net_preflight.SystemFacts | None = None) -> Check:
    if (found or facts()).btf:
        return part.check(OK, f"{net_preflight.BTF} present", facts={"present": True})
    return part.check(MISSING, f"{net_preflight.BTF} is missing (the programs read struct sock through it)",
                      KERNEL_FIX, {"present": False})


def tracepoints(part: Part, found: net_preflight.SystemFacts | None = None) -> Check:
    found = found or facts()
    names = ", ".join(t.replace("/", ":") for t in net_preflight.TRACEPOINTS)
    if found.tracefs is None:
        return part.check(MISSING, f"cannot tell without tracefs ({names})", _tracefs_fix(found),
                          {"sock": None, "syscalls": None})
    flags = {"sock": found.tracepoints, "syscalls": found.syscall_tracepoints}
    if all(flags.values()):
        return part.check(OK, f"{names} and the syscall tracepoints", facts=flags)
    lacking = [what for what, has in ((names, found.tracepoints),
                                      ("syscall tracepoints", found.syscall_tracepoints)) if not has]
    return part.check(MISSING, f"this kernel lacks {' and '.join(lacking)}",
                      "Linux 6.3+ with CONFIG_FTRACE_SYSCALLS=y", flags)


def kprobes(part: Part, found: net_preflight.SystemFacts | None = None) -> Check:
    found = found or facts()
    names = "/".join(net_preflight.KPROBE_FUNCTIONS)
    if found.tracefs is None:
        return part.check(MISSING, f"cannot tell without tracefs ({names})", _tracefs_fix(found),
                          {"present": None})
    if found.kprobes:
        return part.check(OK, f"kprobes on {names}", facts={"present": True})
    return part.check(MISSING, f"no kprobes on {names} (needed only where the tracepoints are missing)",
                      "A kernel built with CONFIG_KPROBES=y", {"present": False})


def capture(part: Part, found: net_preflight.SystemFacts | None = None) -> Check:
    """Which program ``gpuprof net`` would run, decided by ``net_preflight.choose_program``."""
    try:
        program = net_preflight.choose_program("auto", found or facts())
    except GpuprofError as exc:
        return part.check(MISSING, f"no: {exc.message}", _capture_fixes(exc, found or facts()),
                          {"program": None})
    return part.check(OK, f"gpuprof net runs the {program} program", facts={"program": program})


def _capture_fixes(exc: GpuprofError, found: net_preflight.SystemFacts) -> str:
    """Every step still missing, not only the first one the preflight stops at; the
    preflight's own hint when the parts doctor shows are all there (a kernel without them)."""
    steps = [fix for fix, missing in ((ROOT_FIX, not found.is_root),
                                      (BPFTRACE_FIX, found.bpftrace is None),
                                      (TRACEFS_FIX, found.tracefs is None and found.is_root),
                                      (KERNEL_FIX, not found.btf)) if missing]
    return "; ".join(steps) if steps else (exc.hint or "See the eBPF checks above")


def _tracefs_fix(found: net_preflight.SystemFacts) -> str:
    return TRACEFS_FIX if found.is_root else ROOT_FIX
