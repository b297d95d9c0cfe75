"""Rows spooled as newline-delimited JSON and bulk-loaded: how a rebuild writes many runs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:
    from blut_core.lineage import RunLineage

#: DuckDB's type of each logical column type of :data:`blut_core.lineage.COLUMNS`.
TYPES = {"text": "VARCHAR", "int": "BIGINT", "float": "DOUBLE", "bool": "BOOLEAN"}
#: Row order written by a rebuild (lookups by hash prefix and by run skip row groups).
SORT_KEYS = {"artifacts": "hash", "runs": "started, run_id"}


class Spool:
    """Rows written as newline-delimited JSON, one file per table, bulk-loaded by DuckDB.

    (``executemany`` costs ~1.5 ms a row in DuckDB; ``read_json`` loads thousands in one.)
    """

    def __init__(self, root: Path) -> None:
        from blut_core.lineage import TABLES

        self.root = root
        self.counts: dict[str, int] = {t: 0 for t in TABLES}
        self._files: dict[str, IO[str]] = {}

    def add(self, lineage: RunLineage) -> None:
        from blut_core.lineage import COLUMNS, TABLES

        for table in TABLES:
            rows = lineage.rows(table)
            if not rows:
                continue
            fh = self._files.get(table)
            if fh is None:
                fh = self._files[table] = (self.root / f"{table}.jsonl").open("w", encoding="utf-8")
            names = [c for c, _ in COLUMNS[table]]
            for row in rows:
                fh.write(json.dumps({c: row.get(c) for c in names}, allow_nan=False,
                                    separators=(",", ":")))
                fh.write("\n")
            self.counts[table] += len(rows)

    def close(self) -> None:
        for fh in self._files.values():
            fh.close()

    def load(self, con: Any, *, sort: bool = False) -> None:
        """Insert every spooled table; ``sort`` orders rows so DuckDB's per-row-group min/max
        statistics skip most of a table in lookups (artifacts by hash, the rest by run)."""
        from blut_core.lineage import COLUMNS, TABLES

        for table in TABLES:
            if not self.counts[table]:
                continue
            path = str(self.root / f"{table}.jsonl").replace("'", "''")
            spec = ", ".join(f"'{c}': '{TYPES[t]}'" for c, t in COLUMNS[table])
            con.execute(f"INSERT INTO {table} BY NAME SELECT * FROM read_json('{path}', "
                        f"format='newline_delimited', columns={{{spec}}})"
                        + (f" ORDER BY {SORT_KEYS.get(table, 'run_id')}" if sort else ""))
