"""The lineage record of one run: tables of plain rows every sink stores the same way.

A :class:`RunLineage` is what :func:`blut_core.lineage.extract.extract_run` reads from a run
directory and what each lineage sink receives. Its tables and columns are declared once
here (:data:`COLUMNS`, with logical types ``text``, ``int``, ``float``, ``bool``); a JSON
value (params, knobs, counts) is stored as canonical JSON text.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Protocol, runtime_checkable

import attrs

from blut_core.model.reprs import record_repr

Row = dict[str, Any]

COLUMNS: Mapping[str, tuple[tuple[str, str], ...]] = {
    "runs": (
        ("run_id", "text"), ("recipe", "text"), ("params_fingerprint", "text"),
        ("params", "text"), ("outcome", "text"), ("started", "float"), ("ended", "float"),
        ("wall", "float"), ("recipe_commit", "text"), ("recipe_dirty", "bool"),
        ("recipe_root", "text"), ("blut_commit", "text"), ("blut_dirty", "bool"),
        ("blut_version", "text"), ("python", "text"), ("host", "text"), ("cpu_model", "text"),
        ("cores", "int"), ("ram_bytes", "int"), ("gpu_name", "text"),
        ("gpu_memory_bytes", "int"), ("gpu_count", "int"), ("launcher", "text"),
        ("containment", "text"), ("user_name", "text"), ("run_dir", "text"),
        ("stage_count", "int"), ("counts", "text"), ("schedule", "text"),
    ),
    "plugins": (
        ("run_id", "text"), ("name", "text"), ("distribution", "text"), ("version", "text"),
        ("state", "text"),
    ),
    "stages": (
        ("run_id", "text"), ("stage", "text"), ("attempt", "int"), ("state", "text"),
        ("classification", "text"), ("returncode", "int"), ("cached", "bool"),
        ("retried", "bool"), ("decision", "text"), ("waited", "float"),
        ("admit_reason", "text"), ("knobs", "text"), ("footprint_bytes", "int"),
        ("cap_bytes", "int"), ("peak_bytes", "int"), ("started", "float"),
        ("finished", "float"), ("duration", "float"), ("cache_key", "text"),
        ("output_hash", "text"), ("job_id", "text"), ("launcher", "text"), ("error", "text"),
    ),
    "artifacts": (
        ("run_id", "text"), ("stage", "text"), ("kind", "text"), ("hash", "text"),
        ("size", "int"), ("files", "int"), ("path", "text"), ("parent_hash", "text"),
        ("produced", "float"),
    ),
    "edges": (
        ("run_id", "text"), ("stage", "text"), ("input_stage", "text"), ("input_hash", "text"),
        ("output_hash", "text"),
    ),
    "metrics": (
        ("run_id", "text"), ("stage", "text"), ("attempt", "int"), ("step", "int"),
        ("name", "text"), ("value", "float"), ("text_value", "text"), ("t", "float"),
        ("final", "bool"),
    ),
    "calibration": (
        ("run_id", "text"), ("t", "float"), ("event", "text"), ("stage", "text"),
        ("key", "text"), ("peak_bytes", "int"), ("source", "text"), ("data", "text"),
    ),
}

#: Tables keyed by run: a run's rows are replaced as a whole on every ingest.
TABLES: tuple[str, ...] = tuple(COLUMNS)


@attrs.frozen(kw_only=True)
class RunLineage:
    """Everything lineage knows about one run, as rows per table (see :data:`COLUMNS`)."""

    __repr__ = record_repr  # attrs' text, not compiled per class

    run: Row
    plugins: tuple[Row, ...] = ()
    stages: tuple[Row, ...] = ()
    artifacts: tuple[Row, ...] = ()
    edges: tuple[Row, ...] = ()
    metrics: tuple[Row, ...] = ()
    calibration: tuple[Row, ...] = ()

    @property
    def run_id(self) -> str:
        return str(self.run["run_id"])

    def rows(self, table: str) -> tuple[Row, ...]:
        """The rows of ``table`` (``runs`` is a one-row table)."""
        if table == "runs":
            return (self.run,)
        rows: tuple[Row, ...] = getattr(self, table)
        return rows

    def tables(self) -> dict[str, tuple[Row, ...]]:
        return {t: self.rows(t) for t in TABLES}

    def to_json(self) -> dict[str, Any]:
        """The JSON document a sink such as ``jsonl`` writes (one per run)."""
        return {"run_id": self.run_id, **{t: list(r) for t, r in self.tables().items()}}


@runtime_checkable
class LineageSink(Protocol):
    """Where runs are indexed. ``LineageSinkSpec.factory(home)`` returns one.

    ``ingest`` replaces the run's rows (so ingesting twice is harmless); ``rebuild`` throws
    the index away and writes it again from ``runs`` (``blut lineage reindex``).
    """

    def ingest(self, lineage: RunLineage) -> None: ...

    def rebuild(self, runs: Iterable[RunLineage]) -> dict[str, int]: ...
