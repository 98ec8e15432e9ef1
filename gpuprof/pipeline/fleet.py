"""Many exports at once on Dask: one task per export, each run by a worker that reads the
export and returns its small partial aggregates (``analyze.fleet``), never its rows.

The client (this process) only merges partials. A local cluster is sized to the machine unless
told otherwise; ``scheduler`` names an existing one (its workers must have gpuprof installed
and see the exports under the same paths). An export that fails becomes a partial with an
``error`` line, so the others still complete.
"""

from __future__ import annotations

import glob
import logging
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from ..analyze.fleet import ExportPartial, export_partial
from ..errors import BadInputError, CaptureError, GpuprofError, MissingDependencyError

EXPORT_SUFFIXES = (".sqlite", ".nsys-rep", ".gpuprof")
CONNECT_TIMEOUT_S = 5
GLOB_CHARACTERS = set("*?[")
# as cli/nsys.py's REPORTED_TABLES: an export with none of them is refused there, failed here
REPORTED_TABLES = ("kernels", "copies", "api_calls", "nvtx_ranges", "memory_events")
NO_DATA = ("holds no GPU kernels, memory copies, CUDA API calls, NVTX ranges or memory events. "
           "Capture CUDA activity with: nsys profile -t cuda,nvtx --cuda-memory-usage=true ...")
START_HINT = ("Start one with 'dask scheduler' and 'dask worker ADDRESS' where the exports can "
              "be read, or leave out --scheduler to run a local cluster")


def is_many(paths: list[str]) -> bool:
    """True when the arguments name several exports: more than one, a directory or a glob."""
    if len(paths) != 1:
        return True
    path = paths[0]
    return Path(path).is_dir() or (_is_glob(path) and not Path(path).exists())


def _is_glob(text: str) -> bool:
    return bool(GLOB_CHARACTERS & set(text))


def find_exports(arguments: list[str]) -> list[Path]:
    """Every export the arguments name, in the order given: files as they are (a missing or
    broken one is reported with the others), a directory's exports (not recursive) and a
    glob's matches, each sorted by name; duplicates once."""
    found: list[Path] = []
    for argument in arguments:
        path = Path(argument)
        if path.is_dir():
            found += sorted(p for p in path.iterdir() if _is_export(p))
        elif _is_glob(argument) and not path.exists():
            found += sorted(Path(p) for p in glob.glob(argument) if _is_export(Path(p)))
        else:
            found.append(path)
    unique = list(dict.fromkeys(found))
    if not unique:
        raise BadInputError(f"no exports in {', '.join(arguments)}",
                            f"Give .sqlite, .nsys-rep or .gpuprof files, a directory holding "
                            f"them or a glob such as 'runs/*.sqlite' "
                            f"(exports end in {', '.join(EXPORT_SUFFIXES)})")
    return unique


def _is_export(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in EXPORT_SUFFIXES


def export_names(paths: list[Path]) -> list[str]:
    """File names, or paths where two exports share a name (rank0/report.sqlite, ...)."""
    names = [p.name for p in paths]
    return [str(p) if names.count(p.name) > 1 else p.name for p in paths]


def read_partial(path: str, name: str) -> ExportPartial:
    """Runs on a worker: load one export and reduce it to its partials; a failure becomes the
    partial's one-line ``error``."""
    from ..api import load

    try:
        run = load(path)
        if not any(run.num_rows(table) for table in REPORTED_TABLES):
            return ExportPartial(name, error=NO_DATA)
        layers = run.layers() if run.is_tensorrt() and run.num_rows("kernels") else None
        return export_partial(name, run, _release(run), _gpus(run), layers, run.time_zero)
    except GpuprofError as exc:
        return ExportPartial(name, error=exc.one_line())
    except MemoryError:
        return ExportPartial(name, error="too big for this worker's memory. Run fewer workers "
                                         "per machine (--workers) or a cluster with more memory")
    except Exception as exc:  # a worker must report its export, never lose the others
        return ExportPartial(name, error=f"could not be read ({type(exc).__name__}: {exc})")


def _release(run) -> str:
    meta = run.meta
    return (f"Nsight Systems {meta.tool_version}" if meta.tool_version
            else meta.tool or "not recorded")


def _gpus(run) -> str:
    if run.meta.gpus:
        return "; ".join(f"{g.device_id}: {g.name}" for g in run.meta.gpus)
    if run.num_rows("kernels"):
        ids = sorted(run.kernels["device_id"].unique().tolist())
        return ", ".join(f"device {i} (name not recorded)" for i in ids)
    return "none recorded"


Progress = Callable[[str, ExportPartial], None]


def run_fleet(paths: list[Path], scheduler: str | None = None, workers: int | None = None,
              processes: bool = True, on_done: Progress | None = None) -> list[ExportPartial]:
    """Every export's partials, in the order of ``paths``, read by Dask workers."""
    from dask.distributed import as_completed

    names = export_names(paths)
    with _client(scheduler, workers or default_workers(len(paths)), processes) as client:
        # absolute paths: a worker of an existing cluster has its own working directory
        futures = {client.submit(read_partial, str(path.absolute()), name, pure=False,
                                 key=f"gpuprof-read-{index}-{path.name}"): name
                   for index, (path, name) in enumerate(zip(paths, names))}
        done: dict[str, ExportPartial] = {}
        for future in as_completed(futures):
            name = futures[future]
            done[name] = _result(future, name)
            future.release()  # the partial is here now; the worker may drop it
            if on_done is not None:
                on_done(name, done[name])
    return [done[name] for name in names]


def _result(future, name: str) -> ExportPartial:
    try:
        return future.result()
    except Exception as exc:  # the worker died (killed for memory, ...): report, go on
        return ExportPartial(name, error=f"its worker failed ({type(exc).__name__}: {exc})")


def default_workers(exports: int) -> int:
    """One single-threaded worker per core, no more than there are exports."""
    return max(1, min(exports, os.cpu_count() or 1))


@contextmanager
def _client(scheduler: str | None, workers: int, processes: bool) -> Iterator:
    try:
        from dask.distributed import Client, LocalCluster
    except ImportError as exc:
        raise MissingDependencyError("many exports at once need Dask (dask.distributed)",
                                     "pip install 'dask[distributed]'") from exc
    if scheduler:
        with _connected(Client, scheduler) as client:
            yield client
        return
    with _local_cluster(LocalCluster, workers, processes) as cluster, Client(cluster) as client:
        yield client


def _local_cluster(cluster_class, workers: int, processes: bool):
    try:
        # CRITICAL: a worker whose heartbeat meets the scheduler already closing logs an ERROR
        # with a traceback at shutdown (seen in CI, rarely); what users need from the
        # workers comes back as each export's status line, never through Dask's logs
        return cluster_class(n_workers=workers, threads_per_worker=1, processes=processes,
                             dashboard_address=None, silence_logs=logging.CRITICAL)
    except (OSError, RuntimeError, TimeoutError) as exc:
        # e.g. worker processes that cannot start: spawned workers re-import the main module,
        # which a script must guard with `if __name__ == "__main__":`
        raise CaptureError(f"could not start a local Dask cluster of {workers} workers ({exc})",
                           "Pass --scheduler ADDRESS of a running cluster, or fewer --workers"
                           ) from exc


@contextmanager
def _connected(client_class, scheduler: str) -> Iterator:
    try:
        client = client_class(scheduler, timeout=CONNECT_TIMEOUT_S)
    except (OSError, TimeoutError, ValueError) as exc:
        raise BadInputError(f"cannot reach the Dask scheduler at {scheduler} "
                            f"({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})",
                            START_HINT) from exc
    with client:
        yield client
