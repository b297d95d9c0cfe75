"""blut's own backends, footprint models and lineage sinks pass the contract suites they offer.

Each class subclasses a suite of :mod:`blut_core.testing.contracts`, as a third-party
plugin's tests would; a backend that is not usable here skips with its own reason.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from blut_core.host.interfaces import Containment, FootprintModel
from blut_core.testing.contracts import (
    BadDeclaration,
    ContainmentContract,
    FootprintExample,
    FootprintModelContract,
    LineageSinkContract,
)

# -- containments ------------------------------------------------------------------------


class TestCgroupV1(ContainmentContract):
    def make_containment(self) -> Containment:
        from blut_plugins.cgroup.backend import CgroupContainment

        return CgroupContainment(1)


class TestCgroupV2(ContainmentContract):
    def make_containment(self) -> Containment:
        from blut_plugins.cgroup.backend import CgroupContainment

        return CgroupContainment(2)


class TestSystemd(ContainmentContract):
    def make_containment(self) -> Containment:
        from blut_plugins.systemd.backend import Systemd

        return Systemd()


class TestRlimit(ContainmentContract):
    tracks_new_sessions = False

    def make_containment(self) -> Containment:
        from blut_plugins.rlimit.backend import Rlimit

        return Rlimit()


class TestBare(ContainmentContract):
    tracks_new_sessions = False

    def make_containment(self) -> Containment:
        from blut_plugins.bare.backend import Bare

        return Bare()


# -- footprint models --------------------------------------------------------------------


class TestFixedModel(FootprintModelContract):
    def make_model(self) -> FootprintModel:
        from blut_plugins.footprints.fixed import FixedModel

        return FixedModel()

    def examples(self) -> Sequence[FootprintExample]:
        return [
            # quickstart's streaming stages, declared 256M, peak under 2 MiB in a fork-server
            # worker (measured by run_recipe + declared_peaks on this box)
            FootprintExample(spec={"memory": "256M"}, peak="2M"),
            # drivers only key calibration: a fixed model ignores them
            FootprintExample(spec={"memory": 2 << 30}, drivers={"workers": 4}, peak="2G"),
            FootprintExample(spec={"memory": "150MiB"}, peak=150 << 20),
        ]

    def bad_declarations(self) -> Sequence[BadDeclaration]:
        return [
            BadDeclaration(spec={}, message="'memory' is missing"),
            BadDeclaration(spec={"memory": "2G", "base": "1G"}, message="unknown key(s) base"),
            BadDeclaration(spec={"memory": "lots"}, message="fixed footprint memory"),
            BadDeclaration(spec={"memory": 0}, message="must be positive"),
            BadDeclaration(spec={"memory": "12Gb"}, message="fixed footprint memory"),
        ]


class TestScalingModel(FootprintModelContract):
    def make_model(self) -> FootprintModel:
        from blut_plugins.footprints.scaling import ScalingModel

        return ScalingModel()

    def examples(self) -> Sequence[FootprintExample]:
        per_band = {"per": "1G", "every": 21}
        return [
            # quickstart's bigrams at 200 docs × 400 words: declared 103 MiB, measured 10.5 MiB
            FootprintExample(spec={"base": "64M", "terms": {"words": "512"}},
                             drivers={"words": 80_000}, peak="11M"),
            # products of drivers are exact: 1G + 4 × 2G + 4 × 8 × 64M
            FootprintExample(spec={"base": "1G", "terms": {"workers": "2G", "workers*prefetch": "64M"}},
                             drivers={"workers": 4, "prefetch": 8}, peak="11G"),
            # 'every' rounds up: 168 channels are eight 21-channel bands, and 22 channels need
            # more than one (a linear 512M + 22/21 × 1G, which one band would undercut)
            FootprintExample(spec={"base": "512M", "terms": {"channels": per_band}},
                             drivers={"channels": 168}, peak="8.5G", note="168 channels"),
            FootprintExample(spec={"base": "512M", "terms": {"channels": per_band}},
                             drivers={"channels": 22}, peak=(512 << 20) + (22 << 30) // 21,
                             note="22 channels"),
            FootprintExample(spec={"base": "100M", "terms": {}}, peak="100M"),
        ]

    def bad_declarations(self) -> Sequence[BadDeclaration]:
        return [
            BadDeclaration(spec={"terms": {}}, message="'base' is missing"),
            BadDeclaration(spec={"base": "1G", "per": "2G"}, message="unknown key(s) per"),
            BadDeclaration(spec={"base": "1G", "terms": {"workers": "2G"}}, drivers={},
                           message="unknown driver 'workers'"),
            BadDeclaration(spec={"base": "1G", "terms": {"channels": {"per": "1G", "every": 0}}},
                           drivers={"channels": 21}, message="'every' must be a whole number"),
            BadDeclaration(spec={"base": "1G", "terms": {"channels": {"every": 21}}},
                           drivers={"channels": 21}, message="expected keys 'per'"),
            BadDeclaration(spec={"base": "1G", "terms": ["workers"]}, message="'terms' must be a mapping"),
            BadDeclaration(spec={"base": "-1G"}, message="must be positive"),
        ]


# -- lineage sinks -----------------------------------------------------------------------


class TestDuckDBSink(LineageSinkContract):
    sink_name = "duckdb"

    def stored(self, sink: Any) -> Mapping[str, Mapping[str, int]]:
        from blut_core.lineage import TABLES

        out: dict[str, dict[str, int]] = {}
        sink.catch_up()                            # what every reader does first
        if not sink.path.exists():
            return out
        with sink.reader() as con:
            for table in TABLES:
                for run_id, n in con.execute(
                        f"SELECT run_id, count(*) FROM {table} GROUP BY run_id").fetchall():
                    out.setdefault(run_id, {})[table] = n
        return out


class TestJsonlSink(LineageSinkContract):
    sink_name = "jsonl"

    def stored(self, sink: Any) -> Mapping[str, Mapping[str, int]]:
        from blut_core.lineage import TABLES

        return {run_id: {t: len(doc.get(t) or ()) for t in TABLES}
                for run_id, doc in sink.read().items()}
