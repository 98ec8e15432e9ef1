"""What `gpuprof diff` accepts, read into the data model: a saved run (.gpuprof), an nsys
export (.sqlite, .nsys-rep), a trtexec run (a folder or its profile JSON; layer information,
times and log found beside it by name), a Triton trace (JSON, its parts or a folder) or a
load-test summary CSV (perf_analyzer -f, model_analyzer: statistics without samples)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from ..errors import BadInputError
from ..model import Profile
from ..model.profile import SUFFIX


@dataclass
class DiffInput:
    profile: Profile
    kind: str                           # "saved run", "nsys export", "trtexec", "triton trace"
    formats: pd.DataFrame | None = None  # trtexec: each layer's input/output formats
    summaries: dict[str, pd.DataFrame] | None = None  # load-test CSVs: statistics, no samples


def read_diff_input(path: str | Path) -> DiffInput:
    path = Path(path)
    if not path.exists():
        raise BadInputError(f"{path.name} does not exist", "Pass a saved run, an nsys export, a trtexec "
                            "folder or profile, or a Triton trace")
    if path.suffix == SUFFIX:
        return DiffInput(Profile.load(path), "saved run")
    if path.suffix in (".sqlite", ".nsys-rep", ".qdrep"):
        from .nsys import read_nsys

        return DiffInput(read_nsys(path), "nsys export")
    if path.suffix == ".csv":
        from .perf_csv import read_perf_csv

        return DiffInput(Profile(), "load-test CSV", summaries=read_perf_csv(path))
    if path.is_dir() and _has_trtexec_profile(path) or path.suffix == ".json" and _is_trtexec_profile(path):
        return _trtexec(path)
    if path.is_dir() or path.suffix == ".json":
        from .triton_trace import read_triton_trace

        return DiffInput(read_triton_trace(path).profile, "triton trace")
    raise BadInputError(f"cannot tell what {path.name} is",
                        "Pass a .gpuprof, .sqlite/.nsys-rep, a trtexec folder or profile JSON, or a Triton trace JSON")


def _has_trtexec_profile(folder: Path) -> bool:
    return any(_is_trtexec_profile(p) for p in folder.glob("*.json") if "profile" in p.name.lower())


def _is_trtexec_profile(path: Path) -> bool:
    try:
        with path.open(encoding="utf-8") as handle:
            head = handle.read(256)
    except (OSError, UnicodeDecodeError):
        return False
    compact = "".join(head.split())
    return compact.startswith('[{"count"')


def _trtexec(path: Path) -> DiffInput:
    from .trtexec import find_trtexec_files, read_trtexec

    files = find_trtexec_files(path)
    run = read_trtexec(profile=files["profile"], layer_info=files.get("layer_info"),
                       times=files.get("times"), log=files.get("log"))
    return DiffInput(run.profile, "trtexec", run.formats)

