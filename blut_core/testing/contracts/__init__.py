"""Contract suites: pytest classes a plugin's test module subclasses to prove it keeps the
promises blut relies on.

A suite is a class whose name does not start with ``Test`` (so pytest does not collect the
base itself); subclass it under a ``Test…`` name and implement what it asks for::

    from blut_core.testing.contracts import LineageSinkContract

    class TestMySink(LineageSinkContract):
        sink_name = "mysink"

        def stored(self, sink):
            return sink.row_counts()

- :class:`ContainmentContract` (:mod:`.containment`): a memory containment backend;
- :class:`FootprintModelContract` (:mod:`.footprint`): a footprint model;
- :class:`LineageSinkContract` (:mod:`.lineage`): a lineage sink.

- :class:`LauncherContract` (:mod:`.launcher`): a launcher (local, slurm, ray).

blut's own backends, models and sinks pass these suites in ``tests/plugins/test_contracts.py``,
its local launcher in ``tests/plugins/test_launcher_contract.py``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from blut_core._lazy import exports

if TYPE_CHECKING:
    from blut_core.testing.contracts.containment import ContainmentContract as ContainmentContract
    from blut_core.testing.contracts.footprint import BadDeclaration as BadDeclaration
    from blut_core.testing.contracts.footprint import FootprintExample as FootprintExample
    from blut_core.testing.contracts.footprint import FootprintModelContract as FootprintModelContract
    from blut_core.testing.contracts.launcher import LauncherContract as LauncherContract
    from blut_core.testing.contracts.lineage import LineageSinkContract as LineageSinkContract

_WHERE = {
    "ContainmentContract": "testing.contracts.containment",
    "BadDeclaration": "testing.contracts.footprint", "FootprintExample": "testing.contracts.footprint",
    "FootprintModelContract": "testing.contracts.footprint",
    "LineageSinkContract": "testing.contracts.lineage",
    "LauncherContract": "testing.contracts.launcher",
}

__getattr__, __all__ = exports(__name__, _WHERE)
