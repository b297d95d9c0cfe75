"""Running a recipe from a test, and checking a stage's measured peak against its declaration.

``run_recipe("quickstart:wordcount", docs=12)`` runs in this process, as ``blut run`` would
(the local launcher, the memory broker, real containment, the lineage sinks), and returns the
:class:`~blut_core.model.outcome.RunSummary`. :func:`declared_peaks` reads a finished run
directory back: for every attempt that ran, the kernel's peak and the bytes the stage's
*declaration* gives at the drivers it ran with (its footprint model's estimate, not a
calibrated value), which is what :func:`assert_peak_within_declaration` compares.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from blut_core.model.reprs import record_repr

if TYPE_CHECKING:
    from blut_core.host.app import App
    from blut_core.model.outcome import RunSummary
    from blut_core.run.executor import ExecOptions

__all__ = ["PeakCheck", "RunRecipe", "assert_peak_within_declaration", "declared_peaks"]


class RunRecipe:
    """``run_recipe(recipe, **params) -> RunSummary`` against one App (the fixture's).

    Params are keyword arguments; a nested params class takes a mapping
    (``report={"top": 5}``). ``options`` are the run's switches
    (:class:`~blut_core.run.executor.ExecOptions`: ``no_cache``, ``jobs``, ``fail_fast``,
    ``deadline``); ``launcher`` and ``no_calibration`` mean what ``blut run``'s options do.
    Bad params raise the same one-line :class:`~blut_core.errors.ConfigError` the CLI shows.
    """

    def __init__(self, app: App) -> None:
        self.app = app

    def __call__(self, recipe: str, /, *, options: ExecOptions | None = None,
                 launcher: str = "local", no_calibration: bool = False,
                 **params: Any) -> RunSummary:
        from blut_core.model.convert import structure
        from blut_core.run.orchestrate import Prepared, start_run

        ref = self.app.cookbooks.find(recipe)
        typed = structure(dict(params), ref.recipe.params, where=f"params for {ref.qualname}",
                          hint=f"see `blut recipes show {ref.qualname}` for fields and types")
        plan = ref.recipe.build(typed)
        plan.validate()
        return start_run(self.app, Prepared(ref=ref, params=typed, plan=plan),
                         launcher=launcher, options=options, no_calibration=no_calibration)


@attrs.frozen(kw_only=True)
class PeakCheck:
    """One attempt of one stage: its measured peak against what its declaration gives.

    ``declared_bytes`` is the footprint model's estimate at ``drivers`` (the drivers the
    attempt ran with, after any right-sizing); ``peak_bytes`` is the kernel's (``None`` when
    the containment reports none); ``footprint_bytes`` is what admission booked (the
    calibrated value when one was known).
    """

    __repr__ = record_repr  # attrs' text, not compiled per class

    stage: str
    attempt: int
    state: str
    classification: str
    drivers: Mapping[str, int]
    declared_bytes: int | None
    footprint_bytes: int | None
    cap_bytes: int | None
    peak_bytes: int | None

    @property
    def ratio(self) -> float | None:
        """``declared / peak``: 1.0 exact, above 1 conservative, below 1 an under-estimate."""
        if not self.peak_bytes or self.declared_bytes is None:
            return None
        return self.declared_bytes / self.peak_bytes


def _run_dir(run: RunSummary | Path | str) -> Path:
    return Path(run) if isinstance(run, (str, os.PathLike)) else Path(run.run_dir)


def declared_peaks(app: App, run: RunSummary | Path | str) -> list[PeakCheck]:
    """Every attempt that ran in ``run`` (a summary or a run directory), in the order they ran."""
    from blut_core.broker.calibration import CalibrationStore
    from blut_core.broker.config import BrokerConfig
    from blut_core.broker.resolve import Estimator
    from blut_core.run.resume import load_plan
    from blut_core.store.rundir import STATUS, read_events

    path = _run_dir(run)
    recipe, plan = load_plan(path)
    estimator = Estimator(app.registry, recipe, CalibrationStore(None),
                          BrokerConfig.from_environ({**os.environ, **app.settings.environ}))
    stages = plan.by_name
    admitted: dict[tuple[str, int], dict[str, Any]] = {}
    out: list[PeakCheck] = []
    for ev in read_events(path / STATUS):
        name, kind = ev.get("stage"), ev.get("event")
        if name not in stages:
            continue
        key = (str(name), int(ev.get("attempt") or 0))
        if kind == "stage_admitted":
            admitted[key] = ev
        elif kind == "stage_finished" and key in admitted:
            stage = stages[str(name)]
            drivers = {**estimator.requested(stage), **(admitted[key].get("knobs") or {})}
            declared = estimator.model_bytes(stage, drivers) if stage.footprint else None
            out.append(PeakCheck(stage=key[0], attempt=key[1], state=str(ev.get("state")),
                                 classification=str(ev.get("classification")), drivers=drivers,
                                 declared_bytes=declared,
                                 footprint_bytes=admitted[key].get("footprint_bytes"),
                                 cap_bytes=ev.get("cap_bytes"), peak_bytes=ev.get("peak_bytes")))
    return out


def _size(n: int | None) -> str:
    from blut_core.model.sizes import format_size

    return "?" if n is None else format_size(n)


def assert_peak_within_declaration(app: App, run: RunSummary | Path | str, stage: str, *,
                                   at_most: float = 1.0) -> list[PeakCheck]:
    """Fail unless every attempt of ``stage`` peaked at or below ``at_most`` × its declaration.

    Skips the test when the containment in use reports no peak (``rlimit``, ``bare``): there
    is nothing to compare. Returns the attempts checked.
    """
    import pytest

    checks = [c for c in declared_peaks(app, run) if c.stage == stage]
    if not checks:
        pytest.fail(f"stage {stage!r} did not run in {_run_dir(run).name} (cached, skipped or "
                    f"unknown)", pytrace=False)
    for c in checks:
        if c.declared_bytes is None:
            pytest.fail(f"stage {stage!r} declares no footprint", pytrace=False)
        if c.peak_bytes is None:
            pytest.skip(f"the containment in use reports no peak for stage {stage!r}")
        if c.peak_bytes > at_most * c.declared_bytes:
            drivers = ", ".join(f"{k}={v}" for k, v in c.drivers.items()) or "no drivers"
            pytest.fail(f"stage {stage!r} attempt {c.attempt} peaked at {_size(c.peak_bytes)}, "
                        f"above {at_most:g} × its declared {_size(c.declared_bytes)} ({drivers}; "
                        f"{c.classification})", pytrace=False)
    return checks
