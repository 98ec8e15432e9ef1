"""The report formats and the extensions that choose them: plain constants, so command-line
options can list them without importing the renderers (or pandas)."""

from __future__ import annotations

FORMATS = ("terminal", "md", "csv", "json", "html")
EXTENSIONS = {".md": "md", ".markdown": "md", ".csv": "csv", ".json": "json", ".txt": "terminal",
              ".html": "html", ".htm": "html"}
