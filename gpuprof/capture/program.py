"""The user's program as gpuprof's child (``gpuprof run -- python app.py``).

It runs in its own process group, so stopping it reaches everything it started, and is
registered with ``children`` (stopped at gpuprof's exit and on SIGTERM/SIGHUP; SIGTERMed by
Linux if gpuprof dies). Being in another group, it does not get the terminal's Ctrl-C:
``wait`` forwards that SIGINT to its group and keeps waiting, so the program ends the way
Ctrl-C ends it (its profiler still writes its files) and no orphan is left.
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
from collections.abc import Sequence

from ..errors import MissingToolError
from . import children

STOP_GRACE_S = 30


class Program(children.Child):
    def __init__(self, argv: Sequence[str], env: dict[str, str]):
        self.argv, self.env = list(argv), env
        self.proc: subprocess.Popen | None = None
        self.interrupted = False

    def start(self) -> None:
        try:
            self.proc = subprocess.Popen(self.argv, env=self.env, start_new_session=True,
                                         preexec_fn=children.die_with_parent(signal.SIGTERM))
        except FileNotFoundError as exc:
            raise MissingToolError(f"cannot run '{self.argv[0]}': not found",
                                   "Check the command after '--'") from exc
        children.register(self)

    def wait(self) -> int:
        """The program's exit status as a shell gives it (128 + signal when killed)."""
        assert self.proc is not None
        while True:
            try:
                code = self.proc.wait()
                break
            except KeyboardInterrupt:
                self.interrupted = True
                children.signal_group(self.proc, signal.SIGINT)
        children.unregister(self)
        return 128 - code if code < 0 else code

    def stop(self) -> None:
        """SIGTERM to the group, SIGKILL after a grace period."""
        if self.proc is None or self.proc.poll() is not None:
            children.unregister(self)
            return
        children.signal_group(self.proc, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=STOP_GRACE_S)
        if self.proc.poll() is None:
            children.signal_group(self.proc, signal.SIGKILL)
            self.proc.wait()
        children.unregister(self)
