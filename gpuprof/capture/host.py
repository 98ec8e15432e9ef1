"""Facts about the host a run measured on, shared by every backend (standard library only, so
the TensorRT runner child reads them without importing any other backend)."""

from __future__ import annotations

import os
import platform


def cpu_model() -> str:
    """The CPU's marketing name from /proc/cpuinfo; ``platform.processor()`` elsewhere."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_facts() -> dict[str, str | int | None]:
    """``cpu_model`` and ``cpu_cores_logical``, as every backend's ``RunMeta.extra`` holds them."""
    return {"cpu_model": cpu_model(), "cpu_cores_logical": os.cpu_count()}


def available_memory_bytes() -> int | None:
    """Memory a new allocation can still get: the kernel's MemAvailable, or less where this
    process's cgroup (a container's limit) leaves less; None where neither can be read."""
    found = [n for n in (_meminfo_available(), _cgroup_room()) if n is not None]
    return min(found) if found else None


def _meminfo_available() -> int | None:
    try:
        with open("/proc/meminfo", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _cgroup_room() -> int | None:
    """The cgroup's limit minus its usage (cgroup v2, then v1); None without a limit."""
    for limit_file, usage_file in (("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
                                   ("/sys/fs/cgroup/memory/memory.limit_in_bytes",
                                    "/sys/fs/cgroup/memory/memory.usage_in_bytes")):
        try:
            with open(limit_file, encoding="ascii") as limit, \
                    open(usage_file, encoding="ascii") as usage:
                text = limit.read().strip()
                if text == "max" or int(text) >= 1 << 60:  # v1 writes a huge number for none
                    return None
                return max(int(text) - int(usage.read().strip()), 0)
        except (OSError, ValueError):
            continue
    return None
