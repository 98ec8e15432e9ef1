"""Can this machine run gpuprof's eBPF capture, and with which program?

``system_facts`` looks (and mounts tracefs where it is absent, as root); ``choose_program``
decides from those facts alone, so every refusal is one line naming the fix and is testable
on any machine.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from .. import bpf
from ..errors import BadInputError, CaptureError, MissingToolError

PROGRAM_CHOICES = ("auto", "tracepoint", "kprobe")
TRACEFS_DIRS = (Path("/sys/kernel/tracing"), Path("/sys/kernel/debug/tracing"))
BTF = Path("/sys/kernel/btf/vmlinux")
TRACEPOINTS = ("sock/sock_send_length", "sock/sock_recv_length")
KPROBE_FUNCTIONS = ("tcp_sendmsg", "tcp_recvmsg")


@dataclass(frozen=True)
class SystemFacts:
    is_root: bool
    bpftrace: str | None            # path of the bpftrace binary
    tracefs: Path | None            # a mounted tracing directory
    tracefs_error: str | None       # why none is mounted (and mounting failed)
    btf: bool                       # kernel BTF, to read struct sock without headers
    tracepoints: bool               # sock:sock_send_length and sock:sock_recv_length
    kprobes: bool                   # kprobes on tcp_sendmsg and tcp_recvmsg
    syscall_tracepoints: bool = True  # syscalls:sys_enter_getpgid, the stop marker


def system_facts(mount: bool = True) -> SystemFacts:
    is_root = os.geteuid() == 0
    tracefs, error = _tracefs(mount and is_root)
    return SystemFacts(
        is_root=is_root, bpftrace=shutil.which("bpftrace"), tracefs=tracefs, tracefs_error=error,
        btf=BTF.exists(),
        tracepoints=tracefs is not None and all((tracefs / "events" / t).is_dir() for t in TRACEPOINTS),
        kprobes=tracefs is not None and (tracefs / "kprobe_events").exists() and _kernel_has(KPROBE_FUNCTIONS),
        syscall_tracepoints=tracefs is not None and (tracefs / "events" / bpf.SYNC_TRACEPOINT).is_dir())


def choose_program(requested: str, facts: SystemFacts) -> str:
    """The program to run ("tracepoint" or "kprobe"), or the one-line reason none can run.

    ``auto`` prefers the tracepoints: they hand over the byte count directly and need no
    kprobes (this project's kernels have none); the kprobe program covers kernels older than
    the tracepoints (Linux 6.3)."""
    if requested not in PROGRAM_CHOICES:
        raise BadInputError(f"unknown eBPF program '{requested}'", f"Choose one of: {', '.join(PROGRAM_CHOICES)}")
    if not facts.is_root:
        raise CaptureError("eBPF capture needs root (bpftrace loads programs into the kernel)",
                           "Run gpuprof as root, e.g. with sudo")
    if facts.bpftrace is None:
        raise MissingToolError("bpftrace is not installed (not on PATH)",
                               "Install it: apt-get install -y bpftrace (or run tools/setup.sh as root)")
    if facts.tracefs is None:
        raise CaptureError(f"tracefs is not mounted and could not be mounted ({facts.tracefs_error})",
                           "Mount it: mount -t tracefs tracefs /sys/kernel/tracing")
    if not facts.btf:
        raise CaptureError(f"this kernel has no BTF ({BTF} is missing), which the programs need to read "
                           "struct sock", "Use a kernel built with CONFIG_DEBUG_INFO_BTF=y")
    if not facts.syscall_tracepoints:
        raise CaptureError("this kernel has no syscall tracepoints (syscalls:sys_enter_getpgid), which "
                           "gpuprof uses to know bpftrace has written every event before stopping it",
                           "Use a kernel built with CONFIG_FTRACE_SYSCALLS=y")
    if requested == "kprobe" and not facts.kprobes:
        raise BadInputError("the kprobe program was asked for but this kernel has no kprobes on "
                            "tcp_sendmsg/tcp_recvmsg", "Use --program tracepoint (or auto)")
    if requested == "tracepoint" and not facts.tracepoints:
        raise BadInputError("this kernel lacks the sock:sock_send_length/sock_recv_length tracepoints "
                            "(Linux 6.3+)", "Use --program kprobe (or auto)")
    if requested != "auto":
        return requested
    if facts.tracepoints:
        return "tracepoint"
    if facts.kprobes:
        return "kprobe"
    raise CaptureError("this kernel has neither the sock:sock_send_length/sock_recv_length tracepoints "
                       "(Linux 6.3+) nor kprobes on tcp_sendmsg/tcp_recvmsg",
                       "Use a kernel with either (CONFIG_KPROBES=y, or Linux 6.3 or newer)")


def _tracefs(may_mount: bool) -> tuple[Path | None, str | None]:
    for path in TRACEFS_DIRS:
        if (path / "events").is_dir():
            return path, None
    if not may_mount:
        return None, "not root, so not mounted"
    # mounted only when absent: a mounted tracefs is shared by everything else on the machine
    target = TRACEFS_DIRS[0]
    try:
        done = subprocess.run(["mount", "-t", "tracefs", "tracefs", str(target)],
                              capture_output=True, text=True, timeout=20, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return None, f"mount failed: {exc}"
    if done.returncode != 0 or not (target / "events").is_dir():
        return None, f"mount failed: {(done.stderr or done.stdout).strip() or done.returncode}"
    return target, None


def _kernel_has(functions: tuple[str, ...]) -> bool:
    """True when every function is a kernel symbol (/proc/kallsyms; readable names need root)."""
    wanted = set(functions)
    try:
        with open("/proc/kallsyms", encoding="ascii", errors="replace") as handle:
            for line in handle:
                name = line.rstrip("\n").rsplit(" ", 1)[-1]
                wanted.discard(name)
                if not wanted:
                    return True
    except OSError:
        return False
    return False
