"""Lineage: what a run made, from what, with which code, on which machine.

Owns the rows every lineage sink stores (:mod:`~blut_core.lineage.model`), extracting them
from a run directory, feeding finished runs to the configured sinks (at their end, or
when a sink that can catch up is next read), and diffing two runs.
Imports :mod:`blut_core.model`, :mod:`blut_core.host` and :mod:`blut_core.store`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from blut_core._lazy import exports

if TYPE_CHECKING:
    from blut_core.lineage.diff import diff_runs as diff_runs
    from blut_core.lineage.extract import extract_run as extract_run
    from blut_core.lineage.extract import final_metrics as final_metrics
    from blut_core.lineage.model import COLUMNS as COLUMNS
    from blut_core.lineage.model import TABLES as TABLES
    from blut_core.lineage.model import RunLineage as RunLineage
    from blut_core.lineage.pending import catch_up as catch_up
    from blut_core.lineage.pending import ingest_mode as ingest_mode
    from blut_core.lineage.pending import pending_markers as pending_markers
    from blut_core.lineage.pending import settle_pending as settle_pending
    from blut_core.lineage.sinks import configured as configured
    from blut_core.lineage.sinks import open_sink as open_sink

_WHERE = {
    "COLUMNS": "lineage.model", "TABLES": "lineage.model", "RunLineage": "lineage.model",
    "extract_run": "lineage.extract", "final_metrics": "lineage.extract",
    "diff_runs": "lineage.diff",
    "configured": "lineage.sinks", "open_sink": "lineage.sinks",
    "catch_up": "lineage.pending", "ingest_mode": "lineage.pending",
    "pending_markers": "lineage.pending", "settle_pending": "lineage.pending",
}

__getattr__, __all__ = exports(__name__, _WHERE)
