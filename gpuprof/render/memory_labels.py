"""What a memory line or row is, in words: "GPU 0 device", "host pinned", "GPU 1".

One spelling for the report table, memory.png, the Chrome trace counters and the engine report,
so the same memory reads the same everywhere. A label says where the memory lives, never just
which GPU's context allocated it: pinned host memory recorded under GPU 0 is "host pinned".
"""

from __future__ import annotations

import pandas as pd

from ..analyze.memory import HOST_KINDS, ONE_KIND, on_host


def memory_label(device_id: int, memory_kind: str) -> str:
    """Where the memory lives and its kind, without the source."""
    kind = str(memory_kind).replace("_", " ")
    if memory_kind == ONE_KIND:
        return "host" if on_host(device_id, memory_kind) else f"GPU {device_id}"
    if memory_kind in HOST_KINDS:
        return f"host {kind}"
    if memory_kind.startswith("managed"):
        # unified memory migrates between host and GPU: named after the GPU, not placed on it
        return f"{kind} (GPU {device_id})"
    return f"GPU {device_id} {kind}" if device_id >= 0 else kind


def memory_labels(rows: pd.DataFrame) -> list[str]:
    """``memory_label`` for each row of a frame with ``source``, ``device_id`` and
    ``memory_kind``. Host memory of one kind and source allocated through several GPUs' contexts
    names the GPU, so no two rows of one source read the same."""
    devices = rows.groupby(["source", "memory_kind"], observed=True)["device_id"].transform("nunique")
    labels = []
    for device, kind, several in zip(rows["device_id"], rows["memory_kind"], devices, strict=True):
        label = memory_label(int(device), str(kind))
        if several > 1 and str(kind) in HOST_KINDS:
            label += f" (GPU {int(device)} context)"
        labels.append(label)
    return labels
