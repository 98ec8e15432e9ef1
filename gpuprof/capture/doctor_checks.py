"""What ``gpuprof doctor`` says about one part of the machine, and the safe ways to look.

A probe returns ``Check``s. Probes only look: they start no server, create no TensorRT
runtime (without a GPU it crashes the process), mount nothing and need no root. Each tool
they run gets a short timeout in its own process group, so a hung tool cannot hang doctor.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import signal
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from .children import die_with_parent, signal_group

OK, PARTIAL, MISSING = "ok", "partial", "missing"
STATUSES = (OK, PARTIAL, MISSING)
TOOL_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class Check:
    """One part of the machine: ``name`` is the stable id scripts read, ``detail`` one line for
    people, ``fix`` the command that installs or enables what is missing (None when nothing is),
    ``facts`` the values behind the detail (None where unknown), ``notes`` extra lines (a GPU each)."""

    name: str
    group: str
    title: str
    status: str
    detail: str
    fix: str | None = None
    facts: dict[str, Any] = field(default_factory=dict)
    notes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"unknown check status {self.status!r}")


@dataclass(frozen=True)
class Part:
    """What a probe looks at: its id, the group it is shown in, its title on screen."""

    name: str
    group: str
    title: str

    def check(self, status: str, detail: str, fix: str | None = None,
              facts: dict[str, Any] | None = None, notes: Sequence[str] = ()) -> Check:
        return Check(self.name, self.group, self.title, status, detail, fix if status != OK else None,
                     dict(facts or {}), tuple(notes))


Probe = Callable[[Part], Check]


def run_probes(probes: Sequence[tuple[Part, Probe]], reraise: bool = False) -> list[Check]:
    """Run each probe; one that fails unexpectedly becomes a check saying so.

    A broken install (a package whose import raises something odd) must not hide every other
    answer: doctor is what a user runs when something is broken."""
    checks: list[Check] = []
    for part, probe in probes:
        try:
            checks.append(probe(part))
        except Exception as exc:  # reported as the answer, with its type
            if reraise:
                raise
            checks.append(part.check(MISSING, f"could not be checked ({type(exc).__name__}: {exc})",
                                     "Run gpuprof --debug doctor to see why"))
    return checks


def tool_output(argv: Sequence[str], timeout_s: float = TOOL_TIMEOUT_S) -> str | None:
    """stdout+stderr of a short informational command (``--version``), or None when it
    cannot run or does not finish in ``timeout_s``."""
    try:
        proc = subprocess.Popen(list(argv), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, text=True, start_new_session=True,
                                preexec_fn=die_with_parent(signal.SIGKILL))
    except OSError:
        return None
    try:
        out, _ = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        signal_group(proc, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.communicate(timeout=1)
        return None
    return out


def first_line(text: str | None) -> str | None:
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    return lines[0] if lines else None


def package_version(distribution: str) -> str | None:
    """The installed version of a pip distribution, or None."""
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None
