"""The broker as a run and the ``blut broker`` commands use it.

:class:`Broker` gathers, for one process: the settings (``BLUT_*``), the containment
selection, the calibration store under ``BLUT_HOME``, the machine-wide ledger, and builds
per-recipe estimators and the :class:`MemoryPolicy` of a run.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Collection, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from blut_core.broker.admission import RIGHT_SIZE, Admission
from blut_core.broker.calibration import CalibrationStore
from blut_core.broker.config import BrokerConfig
from blut_core.broker.ledger import Ledger, default_ledger_path
from blut_core.broker.machine import Probe, probe
from blut_core.broker.resolve import Estimator
from blut_core.broker.select import Selection, select_containment
from blut_core.errors import AdmissionRefused
from blut_core.model.reprs import record_repr
from blut_core.run.policy import MemoryPolicy, decide_stage

if TYPE_CHECKING:
    from blut_core.host.app import App
    from blut_core.model.plan import Plan

_TRUE = {"1", "true", "yes", "on"}


@attrs.frozen(kw_only=True)
class StageEstimate:
    """One stage through the broker: drivers → footprint → calibrated → cap → decision."""

    __repr__ = record_repr  # attrs' text, not compiled per class

    stage: str
    model: str
    declared: bool
    drivers: Mapping[str, int]
    model_bytes: int
    calibrated_bytes: int | None
    source: str
    footprint: int
    cap: int | None
    decision: str
    knobs: Mapping[str, int]
    reason: str

    def to_json(self) -> dict[str, Any]:
        return {"stage": self.stage, "model": self.model, "declared": self.declared,
                "drivers": dict(self.drivers), "model_bytes": self.model_bytes,
                "calibrated_bytes": self.calibrated_bytes, "source": self.source,
                "footprint_bytes": self.footprint, "cap_bytes": self.cap,
                "decision": self.decision, "knobs": dict(self.knobs), "reason": self.reason}


class Broker:
    """Memory brokering for one process (see the module docstring)."""

    def __init__(self, app: App, *, no_calibration: bool = False,
                 environ: Mapping[str, str] | None = None) -> None:
        env = dict(os.environ if environ is None else environ)
        env.update(app.settings.environ)
        self.environ = env
        self.registry = app.registry
        self.home = app.settings.home
        self.config = BrokerConfig.from_environ(env)
        self.no_calibration = no_calibration or \
            env.get("BLUT_NO_CALIBRATION", "").strip().lower() in _TRUE

    @functools.cached_property
    def selection(self) -> Selection:
        """The containment backend (probed once)."""
        return select_containment(self.registry, self.environ)

    @functools.cached_property
    def ledger(self) -> Ledger:
        """The machine-wide booking ledger."""
        return Ledger(default_ledger_path(self.environ))

    @property
    def calibration_path(self) -> Path:
        return self.home / "calibration.json"

    @functools.cached_property
    def store(self) -> CalibrationStore:
        """Calibration on disk, or an empty in-memory store when calibration is ignored."""
        if self.no_calibration:
            return CalibrationStore(None, clean_share=self.config.measured_clean_share)
        return CalibrationStore(self.calibration_path, clean_share=self.config.measured_clean_share,
                                flush_every=2.0)

    def probe(self) -> Probe:
        """The machine now."""
        return probe()

    def estimator(self, recipe: str) -> Estimator:
        return Estimator(self.registry, recipe, self.store, self.config)

    def policy(self, recipe: str, *, max_parallel: int | None = None) -> MemoryPolicy:
        """The scheduling policy of one run of ``recipe`` (``max_parallel``: CPUs by default)."""
        containment = self.selection.containment
        return MemoryPolicy(estimator=self.estimator(recipe), ledger=self.ledger,
                            config=self.config, containment=containment.name,
                            learn=containment.kernel_evidence, max_parallel=max_parallel)

    def estimates(self, plan: Plan, recipe: str, *, snap: Probe | None = None,
                  booked: int | None = None) -> list[StageEstimate]:
        """Every stage of ``plan`` through the broker, against the machine now (nothing booked)."""
        estimator = self.estimator(recipe)
        snap = snap or self.probe()
        if booked is None:
            booked = sum(b.outstanding() for b in self.ledger.bookings())
        out = []
        for stage in plan.topological():
            estimator.check(stage)
            adm, detail = decide_stage(estimator, stage, snap, booked, self.config)
            out.append(_estimate(stage.name, stage.footprint.model if stage.footprint else "default",
                                 stage.footprint is not None, adm, detail))
        return out

    def footprints(self, plan: Plan, recipe: str) -> dict[str, dict[str, Any]]:
        """Each stage's declaration checked and its footprint resolved (for ``blut plan``)."""
        estimator = self.estimator(recipe)
        snap = self.probe()
        floor = self.config.floor_for(snap.box)
        out: dict[str, dict[str, Any]] = {}
        for stage in plan.topological():
            estimator.check(stage)
            r = estimator.resolve(stage, estimator.requested(stage), box=snap.box, floor=floor)
            out[stage.name] = {"model": stage.footprint.model if stage.footprint else None,
                               "declared": stage.footprint is not None,
                               "footprint_bytes": r.bytes, "source": r.source}
        return out

    def preflight(self, plan: Plan, recipe: str, *,
                  skip: Callable[[], Collection[str]] | None = None) -> None:
        """Check every declaration, and refuse (exit 3) a run with a stage that can never fit.

        ``skip()`` (asked only when a stage would be refused): stages that will not run
        because they are cached. "Never" means: on this box emptied of everything else, at
        every knob's minimum, with what calibration knows.
        """
        estimator = self.estimator(recipe)
        snap = self.probe()
        empty = attrs.evolve(snap, mem_available=snap.box, cgroup_available=None)
        floor = self.config.floor_for(snap.box)
        ceiling = max(0, snap.box - floor)
        refused: dict[str, str] = {}
        for stage in plan.topological():
            estimator.check(stage)
            if snap.known:  # the common case in one resolve: it fits as asked
                r = estimator.resolve(stage, estimator.requested(stage), box=snap.box, floor=floor)
                if r.bytes <= ceiling and not r.exhausted:
                    continue
            adm, _ = decide_stage(estimator, stage, empty, 0, self.config)
            if adm.decision == "refuse":
                refused[stage.name] = adm.reason
        if refused and skip is not None:
            for name in skip():
                refused.pop(name, None)
        reasons = list(refused.values())
        if reasons:
            raise AdmissionRefused(
                reasons[0] if len(reasons) == 1 else f"{len(reasons)} stages can never fit this box",
                details=reasons if len(reasons) > 1 else (),
                hint="lower the stage's drivers, run it on a bigger machine, or forget a stale "
                     "OOM bound with `blut broker calibration forget`")


def _estimate(stage: str, model: str, declared: bool, adm: Admission,
              detail: Mapping[str, Any]) -> StageEstimate:
    return StageEstimate(stage=stage, model=model, declared=declared, drivers=dict(adm.drivers),
                         model_bytes=int(detail["model_bytes"]),
                         calibrated_bytes=detail["calibrated_bytes"], source=str(detail["source"]),
                         footprint=adm.footprint, cap=adm.cap, decision=adm.decision,
                         knobs=dict(adm.knobs) if adm.decision == RIGHT_SIZE else {},
                         reason=adm.reason)
