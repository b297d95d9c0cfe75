"""Hook specifications for blut plugins.

Every hook is named ``blut_*``. The first word of each docstring names its kind:

- **registration**: no arguments, yields typed records; called once while the registry is
  built; names are global and a duplicate is an error naming both providers.
- **decision**: ``firstresult``: the first non-``None`` answer wins; built-in answers are
  ``trylast`` so plugins can override them.
- **notification**: every implementation runs and returns ``None``; an exception is logged
  and never fails the run.
- **lifecycle**: ``historic``: plugins registered late still receive it.

Core calls these only through :class:`blut_core.host.hooks.Hooks`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from blut_core.host.markers import hookspec

if TYPE_CHECKING:
    import click

    from blut_core.host.records import (
        ContainmentSpec,
        FootprintModelSpec,
        LauncherSpec,
        LineageSinkSpec,
        ReportSpec,
        SchedulerSpec,
    )
    from blut_core.host.settings import Settings
    from blut_core.model.outcome import RunInfo, RunSummary, StageOutcome
    from blut_core.model.recipe import CookbookSpec, Recipe
    from blut_core.model.stage import Stage


# ---------------------------------------------------------------------------
# Registration hooks: called once while the registry is built
# ---------------------------------------------------------------------------


@hookspec
def blut_commands() -> Iterable[click.Command]:
    """Registration: contribute top-level ``blut`` sub-commands.

    Called once, lazily, when the CLI lists or resolves a command. Yield ready-made
    :class:`click.Command` (or group) objects; their ``name`` is the sub-command. Keep module
    import cheap: import heavy libraries inside the command callback.

    Example::

        @hookimpl
        def blut_commands():
            yield hello_command

    .. versionadded:: 0.1
    """
    return ()


@hookspec
def blut_cookbooks() -> Iterable[CookbookSpec]:
    """Registration: say that this plugin is a cookbook, with its name and summary.

    Called once, when recipes are first needed (``recipes``, ``plan``, ``run``). Yield exactly
    one :class:`~blut_core.CookbookSpec`; for a plugin loaded from the ``blut.cookbooks``
    entry-point group its name must equal the entry point's. Recipes the same plugin yields
    from :func:`blut_recipes` are this cookbook's (``cookbook:recipe``).

    Example::

        @hookimpl
        def blut_cookbooks():
            yield CookbookSpec(name="quickstart", summary="First steps with blut.")

    .. versionadded:: 0.2
    """
    return ()


@hookspec
def blut_recipes() -> Iterable[Recipe]:
    """Registration: contribute recipes to the cookbook this plugin declares.

    Called once, when recipes are first needed. Yield :class:`~blut_core.Recipe` records
    (params class + ``build``); import the modules that define them inside the hook, so that
    ``blut --help`` pays nothing for them. A name registered twice is skipped and reported.

    Example::

        @hookimpl
        def blut_recipes():
            from mybook.wordcount import WordcountParams, build

            yield Recipe(name="wordcount", summary="Count words.", params=WordcountParams,
                         build=build)

    .. versionadded:: 0.2
    """
    return ()


@hookspec
def blut_launchers() -> Iterable[LauncherSpec]:
    """Registration: declare launchers (where stage processes run).

    Called once when a run picks its launcher (``--launcher NAME``, default ``local``).
    Yield one :class:`~blut_core.LauncherSpec` per launcher.

    Example::

        @hookimpl
        def blut_launchers():
            yield LauncherSpec(name="local", summary="subprocesses here", factory=LocalLauncher)

    .. versionadded:: 0.1
    """
    return ()


@hookspec
def blut_containments() -> Iterable[ContainmentSpec]:
    """Registration: declare containment backends (how a stage's memory is capped).

    Called once when a run or ``blut broker`` needs containment; backends are probed in
    ascending ``priority`` unless ``BLUT_CONTAINMENT`` forces one.

    Example::

        @hookimpl
        def blut_containments():
            yield ContainmentSpec(name="cgroup-v1", summary="...", factory=CgroupV1, priority=20)

    .. versionadded:: 0.1
    """
    return ()


@hookspec
def blut_footprint_models() -> Iterable[FootprintModelSpec]:
    """Registration: declare footprint models (declaration + drivers → bytes).

    Called once when a plan's footprints are estimated (``plan``, ``run``, ``broker``).

    Example::

        @hookimpl
        def blut_footprint_models():
            yield FootprintModelSpec(name="fixed", summary="declared bytes", factory=Fixed)

    .. versionadded:: 0.1
    """
    return ()


@hookspec
def blut_lineage_sinks() -> Iterable[LineageSinkSpec]:
    """Registration: declare lineage sinks (where finished runs are indexed).

    Called once at the end of a run and by ``blut lineage`` commands.

    Example::

        @hookimpl
        def blut_lineage_sinks():
            yield LineageSinkSpec(name="jsonl", summary="one JSON line per run", factory=Jsonl)

    .. versionadded:: 0.1
    """
    return ()


@hookspec
def blut_reports() -> Iterable[ReportSpec]:
    """Registration: declare report formats (one run directory → one document).

    Called once, when ``blut runs report`` or ``blut run --report`` writes a report; the
    format is picked by name (``--format``, default ``html``). Yield one
    :class:`~blut_core.ReportSpec` per format; ``render`` reads only the run directory.

    Example::

        @hookimpl
        def blut_reports():
            yield ReportSpec(name="html", summary="one self-contained HTML file",
                             suffix=".html", render=render_run)

    .. versionadded:: 0.2
    """
    return ()


@hookspec
def blut_schedulers() -> Iterable[SchedulerSpec]:
    """Registration: declare schedule backends (what starts ``blut run`` on a calendar).

    Called once, when a ``blut schedule`` command runs. Yield one
    :class:`~blut_core.SchedulerSpec` per backend; without ``--backend`` the first usable
    one in ascending ``priority`` is used.

    Example::

        @hookimpl
        def blut_schedulers():
            yield SchedulerSpec(name="cron", summary="a crontab line", factory=Cron, priority=20)

    .. versionadded:: 0.2
    """
    return ()


# ---------------------------------------------------------------------------
# Decision hooks: first non-None answer wins
# ---------------------------------------------------------------------------


@hookspec(firstresult=True)
def blut_stage_metrics(
    run: RunInfo, stage: Stage, attempt: int, metrics: Mapping[str, Any]
) -> str | None:
    """Decision: react to metrics a running stage reported: ``"continue"`` or ``"prune"``.

    Called in the driver for every metrics line a stage emits (``ctx.log(...)``). The first
    non-``None`` answer wins. ``"prune"`` kills the stage and prunes its downstream branch
    (recorded as pruned, not failed); other branches go on. The built-in answer prunes on
    non-finite values (NaN, ±inf, "nan") and is ``trylast``.

    :param run: the current run.
    :param stage: the stage that reported.
    :param attempt: its attempt number (1 for the first try).
    :param metrics: the reported values (``step`` included when given).
    :returns: ``"continue"``, ``"prune"`` or ``None`` to let other plugins decide.

    .. versionadded:: 0.1
    """
    return None


# ---------------------------------------------------------------------------
# Notification hooks: every implementation runs; return None; never raise
# ---------------------------------------------------------------------------


@hookspec
def blut_run_started(run: RunInfo) -> None:
    """Notification: a run's directory exists and its first stage is about to be considered.

    Called once per run in the driver process.

    .. versionadded:: 0.1
    """


@hookspec
def blut_stage_started(run: RunInfo, stage: Stage, attempt: int) -> None:
    """Notification: an attempt of ``stage`` was submitted to the launcher.

    Called once per attempt in the driver process (never on remote workers).

    .. versionadded:: 0.1
    """


@hookspec
def blut_stage_finished(run: RunInfo, stage: Stage, outcome: StageOutcome) -> None:
    """Notification: an attempt finished (any way), or the stage was skipped as cached.

    Called once per attempt in the driver process, after outputs were promoted.

    .. versionadded:: 0.1
    """


@hookspec
def blut_run_finished(run: RunInfo, summary: RunSummary) -> None:
    """Notification: a run ended (ok, failed or cancelled); ``summary`` says how.

    Called once per run in the driver, after ``run_finished`` was written to the status
    stream. Lineage ingestion happens here.

    .. versionadded:: 0.1
    """


# ---------------------------------------------------------------------------
# Lifecycle hooks
# ---------------------------------------------------------------------------


@hookspec(historic=True)
def blut_configure(settings: Settings) -> None:
    """Lifecycle: the process's settings (home directory, switches) are final.

    Called once per process, when the App is built, before any command runs.
    Historic: a plugin registered after this call still receives it when it registers.

    .. versionadded:: 0.1
    """
