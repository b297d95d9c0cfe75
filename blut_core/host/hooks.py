"""Typed calls into ``pm.hook``. Core calls these; nothing else in core touches pm.hook."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from blut_core.errors import PluginError

if TYPE_CHECKING:
    import pluggy

    from blut_core.host.settings import Settings
    from blut_core.model.outcome import RunInfo, RunSummary, StageOutcome
    from blut_core.model.stage import Stage

_DECISIONS = frozenset({"continue", "prune"})


class Hooks:
    """The typed facade over the plugin manager's hooks."""

    def __init__(self, pm: pluggy.PluginManager) -> None:
        self._hook = pm.hook

    def configure(self, settings: Settings) -> None:
        self._hook.blut_configure.call_historic(kwargs={"settings": settings})

    def stage_metrics(self, run: RunInfo, stage: Stage, attempt: int,
                      metrics: Mapping[str, Any]) -> str:
        answer = self._hook.blut_stage_metrics(run=run, stage=stage, attempt=attempt,
                                               metrics=metrics)
        if answer is None:
            return "continue"
        if answer not in _DECISIONS:
            raise PluginError(f"blut_stage_metrics returned {answer!r}",
                              hint="an implementation must return 'continue', 'prune' or None")
        return str(answer)

    # Notifications never raise into the run.

    def run_started(self, run: RunInfo) -> None:
        self._notify("blut_run_started", run=run)

    def stage_started(self, run: RunInfo, stage: Stage, attempt: int) -> None:
        self._notify("blut_stage_started", run=run, stage=stage, attempt=attempt)

    def stage_finished(self, run: RunInfo, stage: Stage, outcome: StageOutcome) -> None:
        self._notify("blut_stage_finished", run=run, stage=stage, outcome=outcome)

    def run_finished(self, run: RunInfo, summary: RunSummary) -> None:
        self._notify("blut_run_finished", run=run, summary=summary)

    def _notify(self, name: str, **kwargs: Any) -> None:
        caller = getattr(self._hook, name)
        for impl in reversed(caller.get_hookimpls()):
            try:
                impl.function(*[kwargs[a] for a in impl.argnames])
            except Exception as exc:
                from blut_core.host.log import get_logger

                get_logger().warning("hook_failed", hook=name, plugin=impl.plugin_name,
                                     error=f"{type(exc).__name__}: {exc}")
