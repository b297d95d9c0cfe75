"""The ``jsonl`` lineage sink: one JSON document per run, appended to a file.

Entry point ``lineage-jsonl``. ``$BLUT_HOME/lineage.jsonl`` gets one line per ingest:
``{"run_id": ..., "runs": [...], "plugins": [...], "stages": [...], "artifacts": [...],
"edges": [...], "metrics": [...], "calibration": [...]}`` — the same rows the ``duckdb``
sink stores. A run ingested twice appears twice; the last line for a ``run_id`` wins.
Each line is written with one ``write`` under an exclusive ``flock``, so concurrent runs
never interleave.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from blut_core import hookimpl

if TYPE_CHECKING:
    from blut_core import LineageSinkSpec
    from blut_core.lineage import RunLineage

FILE_NAME = "lineage.jsonl"


class JsonlLineage:
    """Appends run documents to ``<home>/lineage.jsonl``."""

    def __init__(self, home: Path) -> None:
        self.home = Path(home)
        self.path = self.home / FILE_NAME

    def ingest(self, lineage: RunLineage) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        line = (json.dumps(lineage.to_json(), separators=(",", ":"), default=str) + "\n").encode()
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            os.write(fd, line)
        finally:
            os.close(fd)

    def rebuild(self, runs: Iterable[RunLineage]) -> dict[str, int]:
        from blut_core.lineage import TABLES

        self.home.mkdir(parents=True, exist_ok=True)
        counts = {t: 0 for t in TABLES}
        tmp = self.path.with_name(f".{FILE_NAME}.{os.getpid()}.tmp")
        with tmp.open("w", encoding="utf-8") as fh:
            for lineage in runs:
                fh.write(json.dumps(lineage.to_json(), separators=(",", ":"), default=str) + "\n")
                for table, rows in lineage.tables().items():
                    counts[table] += len(rows)
        os.replace(tmp, self.path)
        return counts

    def read(self) -> dict[str, dict[str, Any]]:
        """The latest document per run id."""
        docs: dict[str, dict[str, Any]] = {}
        if self.path.exists():
            with self.path.open(encoding="utf-8") as fh:
                for line in fh:
                    if line.strip():
                        doc = json.loads(line)
                        docs[str(doc["run_id"])] = doc
        return docs


@hookimpl
def blut_lineage_sinks() -> Iterator[LineageSinkSpec]:
    from blut_core import LineageSinkSpec

    yield LineageSinkSpec(name="jsonl", summary=f"one JSON line per run, $BLUT_HOME/{FILE_NAME}",
                          factory=JsonlLineage)
