"""Which command made a saved run, read from its metadata, so that any ``.gpuprof`` file
reopens with the report it was saved from (``gpuprof open RUN`` or that command itself)."""

from __future__ import annotations

from pathlib import Path

from ..errors import BadInputError
from .meta import RunMeta
from .profile import SUFFIX

# RunMeta.tool -> the gpuprof command whose report re-analyses such a run
COMMAND_OF_TOOL = {"nsys": "nsys", "tensorrt": "engine", "onnxruntime": "engine",
                   "triton": "triton"}


def is_saved_run(path: str | Path) -> bool:
    return Path(path).suffix == SUFFIX


def command_for(meta: RunMeta, name: str) -> str:
    """The command that reports on a run with this metadata; ``name`` is the file, for errors."""
    command = COMMAND_OF_TOOL.get(meta.tool)
    if command is None:
        raise BadInputError(f"{name} was saved by '{meta.tool or 'an unknown tool'}', which no "
                            "gpuprof report reads",
                            f"Saved runs of {', '.join(sorted(COMMAND_OF_TOOL))} reopen")
    return command


def require_command(meta: RunMeta, name: str, command: str) -> None:
    """Refuse a saved run made by another command, naming the one that reopens it."""
    made_by = command_for(meta, name)
    if made_by != command:
        raise BadInputError(f"{name} is a saved 'gpuprof {made_by}' run, not a 'gpuprof {command}' one",
                            f"Reopen it with: gpuprof {made_by} {name} (or gpuprof open {name})")
