"""Unit constants shared by every stage, so each number and unit name is written once.

Data stays in raw units (ns, bytes; see docs/ARCHITECTURE.md); only ``render/`` converts. Rendered
reports write microseconds as "µs". ASCII "us" stays only inside machine identifiers that tools
read back: snake_case keys such as ``latency_us`` (Chrome-trace args, the perf windows CSV) and
perf_analyzer's own CSV headers.
"""

from __future__ import annotations

MIB = 1024 * 1024          # bytes in a mebibyte ("MiB" in reports)
NS_PER_US = 1_000
MICROSECONDS = "µs"        # as rendered reports print the unit
