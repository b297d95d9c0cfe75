"""Typed calls into ``pm.hook``. Core calls these; nothing else in core touches pm.hook.

A plugin whose hook raises never takes the process down with it: the plugin is marked
failed (``blut plugins list`` shows why; fatal under ``BLUT_STRICT_PLUGINS=1``), a warning is
logged, and the call goes on as if that implementation were not there.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from blut_core.errors import PluginError

if TYPE_CHECKING:
    from blut_core.host.manager import BlutPluginManager
    from blut_core.host.settings import Settings
    from blut_core.model.outcome import RunInfo, RunSummary, StageOutcome
    from blut_core.model.stage import Stage

_DECISIONS = frozenset({"continue", "prune"})


class Hooks:
    """The typed facade over the plugin manager's hooks."""

    def __init__(self, pm: BlutPluginManager) -> None:
        self._pm = pm
        self._hook = pm.hook

    def configure(self, settings: Settings) -> None:
        self._call("blut_configure", first=False, settings=settings)

    def stage_metrics(self, run: RunInfo, stage: Stage, attempt: int,
                      metrics: Mapping[str, Any]) -> str:
        answer = self._call("blut_stage_metrics", first=True, run=run, stage=stage,
                            attempt=attempt, metrics=metrics)
        if answer is None:
            return "continue"
        if answer not in _DECISIONS:
            raise PluginError(f"blut_stage_metrics returned {answer!r}",
                              hint="an implementation must return 'continue', 'prune' or None")
        return str(answer)

    # Notifications never raise into the run.

    def run_started(self, run: RunInfo) -> None:
        self._call("blut_run_started", first=False, run=run)

    def stage_started(self, run: RunInfo, stage: Stage, attempt: int) -> None:
        self._call("blut_stage_started", first=False, run=run, stage=stage, attempt=attempt)

    def stage_finished(self, run: RunInfo, stage: Stage, outcome: StageOutcome) -> None:
        self._call("blut_stage_finished", first=False, run=run, stage=stage, outcome=outcome)

    def run_finished(self, run: RunInfo, summary: RunSummary) -> None:
        self._call("blut_run_finished", first=False, run=run, summary=summary)

    def _call(self, name: str, *, first: bool, **kwargs: Any) -> Any:
        """Call every implementation in pluggy's order; with ``first``, the first answer wins."""
        caller = getattr(self._hook, name)
        for impl in reversed(caller.get_hookimpls()):
            if self._pm.get_plugin(impl.plugin_name) is None:
                continue
            try:
                answer = impl.function(*[kwargs[a] for a in impl.argnames])
            except Exception as exc:
                from blut_core.host.log import get_logger

                error = f"{name} raised {type(exc).__name__}: {exc}"
                get_logger().warning("hook_failed", hook=name, plugin=impl.plugin_name, error=error)
                self._pm.mark_failed(impl.plugin_name, error)
                continue
            if first and answer is not None:
                return answer
        return None
