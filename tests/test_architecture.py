"""The stage arrows of docs/ARCHITECTURE.md, read from every module's imports.

Data flows one way: capture -> ingest -> align -> analyze -> render around the model, and
only pipeline/, cli/ and api.py compose stages. A module that imports a stage it must not is
a failure here, with no exceptions: capture code returns raw results and takes what it needs
of analysis while it runs as a callable the composer hands in (issue 9's composer seam).
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


def _module(path: Path, root: Path = REPO) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _targets(path: Path, root: Path = REPO) -> set[str]:
    """The gpuprof modules ``path`` imports (relative imports resolved)."""
    module = _module(path, root)
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
    assert crossings() == {}


def test_the_check_sees_a_crossing(tmp_path):
    """The check reads what it must: a capture module importing analyze, absolutely or
    relatively, lazily inside a function, is found."""
    module = tmp_path / "gpuprof" / "capture" / "loadgen" / "probe.py"
    module.parent.mkdir(parents=True)
    module.write_text("def f():\n    from ...analyze import perf\n    import gpuprof.ingest.nsys\n")
    found = {_stage(t) for t in _targets(module, root=tmp_path)}
    assert {"analyze", "ingest"} <= found
