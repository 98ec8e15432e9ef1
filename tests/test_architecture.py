"""The stage arrows of docs/ARCHITECTURE.md, read from every module's imports.

Data flows one way: capture -> ingest -> align -> analyze -> render around the model, and
only pipeline/, cli/ and api.py compose stages. A module that imports a stage it must not is
a failure here, unless it is one of the known crossings below, each waiting to move into
pipeline/ (issue 9's composer seam). A known crossing that is gone must leave the list too,
so the list only shrinks.
"""

from __future__ import annotations

import ast
from pathlib import Path

from tests.conftest import REPO

PACKAGE = REPO / "gpuprof"
SHARED = {"errors", "fsutil", "units", "bpf", "model"}   # usable from any stage
# stage -> the stages it may import (besides itself and SHARED)
ALLOWED = {
    "model": set(),
    "capture": set(),
    "ingest": set(),
    "align": set(),
    "analyze": {"align"},
    "render": {"analyze"},
    "pipeline": {"capture", "ingest", "align", "analyze", "api"},
    "cli": {"capture", "ingest", "align", "analyze", "render", "pipeline", "api"},
    "api": {"ingest", "align", "analyze", "render"},
}
# module -> stages it imports today that it must not; each is work left for the composer
KNOWN_CROSSINGS = {
    "gpuprof.capture.loadgen.options": {"analyze"},       # stability percentiles
    "gpuprof.capture.loadgen.runner": {"analyze"},        # level tables from records
    "gpuprof.capture.loadgen.windows": {"analyze"},       # window metrics while measuring
    "gpuprof.capture.loadgen.tracing": {"ingest"},        # parses trace parts while waiting
}


def _module(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _targets(path: Path) -> set[str]:
    """The gpuprof modules ``path`` imports (relative imports resolved)."""
    module = _module(path)
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = package.split(".")[:len(package.split(".")) - node.level + 1] if node.level else []
            target = ".".join(base + ([node.module] if node.module else []))
            names = [f"{target}.{a.name}" for a in node.names] if not node.module else [target]
            found.update(n for n in names if n.startswith("gpuprof."))
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("gpuprof."))
    return found


def _stage(module: str) -> str:
    part = module.split(".")[1]
    return part.removesuffix(".py")


def crossings() -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        module = _module(path)
        if module.count(".") == 0 or _stage(module) not in ALLOWED:
            continue
        stage = _stage(module)
        bad = {_stage(t) for t in _targets(path)} - {stage} - SHARED - ALLOWED[stage]
        if bad:
            out[module] = bad
    return out


def test_every_import_follows_the_stage_arrows():
    found = crossings()
    new = {m: s - KNOWN_CROSSINGS.get(m, set()) for m, s in found.items()}
    assert {m: s for m, s in new.items() if s} == {}


def test_the_known_crossings_are_still_there_or_leave_the_list():
    found = crossings()
    gone = {m: s for m, s in KNOWN_CROSSINGS.items() if not s <= found.get(m, set())}
    assert gone == {}, "these crossings were fixed: take them off KNOWN_CROSSINGS"
