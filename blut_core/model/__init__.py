"""The model a recipe author uses, and the records a run produces: plain typed data.

Owns Stage, Plan, Recipe and CookbookSpec, Footprint declarations, retry and timeout
declarations, jobs and their states, outcomes and run summaries, sizes, canonical hashing,
the one cattrs converter, and ``record_repr``: the ``__repr__`` every record shares (a
plugin's records too: ``__repr__ = record_repr`` in an attrs class spares attrs compiling
one in every process). Imports nothing of blut but :mod:`blut_core.errors`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from blut_core._lazy import exports

if TYPE_CHECKING:
    from blut_core.model.capacity import Capacity as Capacity
    from blut_core.model.capacity import NodeCapacity as NodeCapacity
    from blut_core.model.convert import converter as converter
    from blut_core.model.convert import structure as structure
    from blut_core.model.convert import unstructure as unstructure
    from blut_core.model.hashing import canonical_json as canonical_json
    from blut_core.model.hashing import digest as digest
    from blut_core.model.hashing import file_hash as file_hash
    from blut_core.model.hashing import tree_hash as tree_hash
    from blut_core.model.jobs import PeakSource as PeakSource
    from blut_core.model.reprs import record_repr as record_repr
    from blut_core.model.sizes import GiB as GiB
    from blut_core.model.sizes import KiB as KiB
    from blut_core.model.sizes import MiB as MiB
    from blut_core.model.sizes import TiB as TiB
    from blut_core.model.sizes import format_size as format_size
    from blut_core.model.sizes import parse_size as parse_size

_WHERE = {
    "Capacity": "model.capacity", "NodeCapacity": "model.capacity", "PeakSource": "model.jobs",
    "converter": "model.convert", "structure": "model.convert", "unstructure": "model.convert",
    "canonical_json": "model.hashing", "digest": "model.hashing", "file_hash": "model.hashing",
    "tree_hash": "model.hashing", "record_repr": "model.reprs",
    "KiB": "model.sizes", "MiB": "model.sizes", "GiB": "model.sizes", "TiB": "model.sizes",
    "format_size": "model.sizes", "parse_size": "model.sizes",
}

__getattr__, __all__ = exports(__name__, _WHERE)
