"""Every file of an engine run in one folder: plots, trace, the saved run and the reports.

Written by the command, not by render: saving a run needs ``api.Run`` (its TensorRT projection
and time zero, each computed once and kept in the saved file); render draws, lists and writes
the reports.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..api import Run
from ..errors import GpuprofError
from ..model import Profile
from ..render import engine_report
from ..render.report import Report


@dataclass
class EngineOutputs:
    directory: Path
    written: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)  # file -> why it was not written


def write_engine_outputs(profile: Profile, directory: str | Path,
                         top: int = engine_report.TOP_LAYERS,
                         backend_note: str | None = None) -> tuple[Report, EngineOutputs]:
    """Write every file of an engine run into ``directory``; return the report and what was written.

    Plots, trace and the saved run go first so the report can list exactly the files that exist.
    Files of ours that this run did not write (e.g. a previous run's layers.csv) are removed, so
    the folder always describes one run.
    """
    run = Run.of(profile)  # the TensorRT projection and time zero, each computed once
    out = EngineOutputs(Path(directory))
    out.directory.mkdir(parents=True, exist_ok=True)
    _optional(out, "memory.png", lambda path: engine_report.plot_memory_file(run, path))
    _optional(out, "trace.json", lambda path: engine_report.write_trace_file(run, path))
    if run.meta.extra.get("raw_profile_file") == "onnxruntime_profile.json":
        out.written.append("onnxruntime_profile.json")
    run.save(out.directory / "run.gpuprof")  # with the projection, as a re-analysis reads it
    out.written.append("run.gpuprof")
    listed = engine_report.file_listing(run, out.written, out.directory)
    report = engine_report.build_engine_report(run, top, backend_note, listed)
    engine_report.add_engine_visuals(run, report, out.directory, out.written)
    out.written[:0] = engine_report.write_report_files(report, out.directory)
    for stale in set(engine_report.FILES) - set(out.written):
        (out.directory / stale).unlink(missing_ok=True)
    return report, out


def _optional(out: EngineOutputs, name: str, write) -> None:
    try:
        write(out.directory / name)
        out.written.append(name)
    except ImportError as exc:
        out.skipped[name] = f"not available in this build ({exc.name})"
    except GpuprofError as exc:
        out.skipped[name] = exc.message
