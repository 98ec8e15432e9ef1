"""The live line ``gpuprof perf`` shows on stderr: current level, window and its numbers.

On a terminal it is a rich ``Live`` line redrawn at each event; otherwise one plain line per
finished level, so logs of CI runs stay readable.
"""

from __future__ import annotations

import sys
import time

from rich.console import Console
from rich.live import Live
from rich.text import Text


class LiveDisplay:
    def __init__(self, enabled: bool = True):
        self.enabled = enabled
        self.console = Console(stderr=True, highlight=False)
        self.live: Live | None = None
        self.level_text = ""
        self.started = time.monotonic()

    def __enter__(self):
        if self.enabled and self.console.is_terminal:
            self.live = Live(Text("connecting..."), console=self.console, transient=True,
                             refresh_per_second=4)
            self.live.__enter__()
        return self if self.enabled else None

    def __exit__(self, *exc) -> None:
        if self.live:
            self.live.__exit__(*exc)

    def __call__(self, kind: str, data: dict) -> None:
        if kind == "level":
            self.level_text = f"{_level(data)} ({data['index'] + 1}/{data['total']})"
            self._show(f"{self.level_text}  warming up")
        elif kind == "window":
            m = data["metrics"]
            self._show(f"{self.level_text} window {data['trial'] + 1}: "
                       f"{m['throughput_infer_s']:.0f}/s p50 {_ms(m['latency_p50_ns'])} "
                       f"p99 {_ms(m['latency_p99_ns'])} n={m['samples']}")
        elif kind == "level_done" and not self.live:
            lv = data["result"]
            print(f"[{time.monotonic() - self.started:6.1f}s] {self.level_text}: "
                  f"{lv.metrics.get('throughput_infer_s', float('nan')):.1f} infer/s "
                  f"({'stable' if lv.stable else 'not stable'})", file=sys.stderr)

    def _show(self, text: str) -> None:
        if self.live:
            elapsed = time.monotonic() - self.started
            self.live.update(Text(f"[{elapsed:5.1f}s] {text}", no_wrap=True, overflow="ellipsis"))


def _level(data: dict) -> str:
    level = data["level"]
    return f"concurrency {level:g}" if data["mode"] == "concurrency" else f"{level:g} req/s"


def _ms(ns: float) -> str:
    return f"{ns / 1e6:.2f}ms" if ns == ns else "-"
