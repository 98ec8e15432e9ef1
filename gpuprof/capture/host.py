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
