"""How long a timed pass runs, the same rule on every backend (trtexec's): a fixed number of
iterations when one is given, else "auto": at least ``min_iterations`` and at least
``min_seconds`` of runs, capped at ``max_iterations``."""

from __future__ import annotations

from typing import NamedTuple

MIN_AUTO_ITERATIONS = 10
MAX_AUTO_ITERATIONS = 100_000
DEFAULT_MIN_SECONDS = 2.0


class TimedCount(NamedTuple):
    iterations: int | None  # None: auto
    min_seconds: float      # the auto rule's time floor (unused with a fixed count)


def requested(iterations: int | None, duration: float | None,
              default_iterations: int | None) -> TimedCount:
    """The count a command's options ask for, on every backend: ``-n`` wins; ``--duration``
    alone means auto; neither means the backend's default (``default_iterations``, None: auto).
    ``min_seconds`` is ``--duration`` where given, else ``DEFAULT_MIN_SECONDS``."""
    min_seconds = DEFAULT_MIN_SECONDS if duration is None else duration
    if iterations is not None:
        return TimedCount(iterations, min_seconds)
    return TimedCount(None if duration is not None else default_iterations, min_seconds)


def timed_done(done: int, elapsed_ns: int, iterations: int | None, min_seconds: float,
               min_iterations: int = MIN_AUTO_ITERATIONS,
               max_iterations: int = MAX_AUTO_ITERATIONS) -> bool:
    """Whether the pass is over after ``done`` runs taking ``elapsed_ns`` in all.

    ``iterations`` None means auto.
    """
    if iterations is not None:
        return done >= iterations
    return done >= max_iterations or (done >= min_iterations and elapsed_ns >= min_seconds * 1e9)


def describe(iterations: int | None, min_seconds: float,
             min_iterations: int = MIN_AUTO_ITERATIONS) -> int | str:
    """What was asked for, as run metadata shows it."""
    if iterations is not None:
        return iterations
    return f"auto (>= {min_iterations} and >= {min_seconds:g} s)"
