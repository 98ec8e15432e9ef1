"""One error hierarchy for everything a user can cause or fix.

Library code raises these and never prints or exits; the CLI turns them into a single
``Error: ...`` line with a next step and a non-zero exit code. Anything else is a bug and keeps
its traceback (shown with ``--debug``).
"""

from __future__ import annotations


class GpuprofError(Exception):
    """Base class: a problem the user can act on. ``hint`` says what to do next."""

    exit_code = 1

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def one_line(self) -> str:
        text = self.message.rstrip(".")
        return f"{text}. {self.hint}" if self.hint else f"{text}."


class BadInputError(GpuprofError):
    """A file, flag or address the user gave us is missing, malformed or of the wrong kind."""

    exit_code = 2


class MissingToolError(GpuprofError):
    """An external program (nsys, bpftrace, tritonserver) is not installed or not on PATH."""

    exit_code = 3


class MissingDependencyError(GpuprofError):
    """An optional Python package (tensorrt, tritonclient, ...) is not importable."""

    exit_code = 3


class CaptureError(GpuprofError):
    """A capture (build, profiled run, server, load test) failed while running."""

    exit_code = 4


class NoDataError(GpuprofError):
    """The input is valid but holds nothing the requested analysis can use."""

    exit_code = 5


def require_module(module: str, install_hint: str):
    """Import an optional heavy module lazily, turning ImportError into a clear error."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingDependencyError(
            f"Python package '{module}' is not installed ({exc})", f"Install it with: {install_hint}"
        ) from exc
