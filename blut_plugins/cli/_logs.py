"""``blut logs RUN [STAGE] [--attempt N] [-f]``: what stages wrote to stdout and stderr.

Entry point ``cli-logs``. Each attempt of each stage keeps ``stdout.log`` and ``stderr.log``
in its attempt directory (``stages/<name>/attempts/<n>/``). Without ``STAGE`` every stage's
last attempt is shown, each log under a ``==> … <==`` header (as ``tail`` does with several
files); with ``STAGE`` only that stage's, and ``--attempt N`` picks an earlier attempt.
``-f`` keeps printing what is written until the run ends (a retry's new attempt is followed
as it starts, under a header); with ``STAGE``, until that stage is done.

Imported when the command is used: :mod:`blut_plugins.cli.logs` registers it.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import click

from blut_core import ConfigError
from blut_core.cli import echo_json, json_option

if TYPE_CHECKING:
    from blut_core import App

STREAMS = ("stdout", "stderr")
#: Seconds between looks at the logs and the status stream while following.
POLL = 0.2
#: A failed attempt is final once this many seconds passed without a retry being announced.
RETRY_GRACE = 1.0


class Log(NamedTuple):
    """One log file of one attempt (a NamedTuple: this module loads at every start)."""

    stage: str
    attempt: int
    stream: str
    path: Path

    @property
    def header(self) -> str:
        return f"==> stage {self.stage}, attempt {self.attempt}, {self.stream}.log <=="


@click.command(name="logs")
@click.argument("run")
@click.argument("stage", required=False)
@click.option("--attempt", type=click.IntRange(min=1), default=None,
              help="This attempt of STAGE (default: its last).")
@click.option("--stream", type=click.Choice(("both", *STREAMS)), default="both", show_default=True,
              help="Which of the two logs.")
@click.option("-n", "--lines", type=click.IntRange(min=0), default=None, metavar="N",
              help="Only the last N lines of each log.")
@click.option("-f", "--follow", is_flag=True,
              help="Keep printing as the logs grow, until the run (or STAGE) is done.")
@json_option
@click.pass_obj
def logs_command(app: App, run: str, stage: str | None, attempt: int | None, stream: str,
                 lines: int | None, follow: bool, as_json: bool) -> None:
    """Print the logs of RUN (id, unique prefix, or 'latest'), or of one STAGE of it."""
    from blut_core.store import find_run

    if attempt is not None and stage is None:
        raise ConfigError("--attempt needs a STAGE", hint="blut logs RUN STAGE --attempt N")
    if follow and as_json:
        raise ConfigError("--json cannot be combined with --follow",
                          hint="print the logs as JSON once the run is over, or follow as text")
    path = find_run(app.settings.runs_dir, run)
    streams = STREAMS if stream == "both" else (stream,)
    names = _stages(path)
    if stage is not None and stage not in names:
        raise ConfigError(f"run {path.name} has no stage {stage!r}",
                          hint=f"its stages: {', '.join(names) or 'none'}")
    if follow:
        _follow(path, [stage] if stage else names, streams, attempt)
        return
    logs = [log for s in ([stage] if stage else names)
            for log in _logs_of(path, s, streams, attempt, strict=stage is not None)]
    if as_json:
        echo_json({"run_id": path.name, "logs": [
            {"stage": g.stage, "attempt": g.attempt, "stream": g.stream, "path": str(g.path),
             "size": _size(g.path), "text": _tail(_read(g.path), lines)} for g in logs]})
        return
    _print(logs, lines, headers=stage is None or len(logs) > 1)
    if stage is not None and not logs:
        click.echo(f"stage {stage!r} has not run in {path.name} ({_state(path, stage)}): "
                   "no logs", err=True)


def _stages(path: Path) -> list[str]:
    """The run's stages in plan order."""
    from blut_core.store import load_run

    return list(load_run(path).stages)


def _state(path: Path, stage: str) -> str:
    from blut_core.store import load_run

    return str(load_run(path).stages.get(stage, {}).get("state", "pending"))


def attempts(path: Path, stage: str) -> list[int]:
    """The attempt numbers of ``stage`` that have a directory, in order."""
    folder = path / "stages" / stage / "attempts"
    try:
        return sorted(int(p.name) for p in folder.iterdir() if p.name.isdigit())
    except OSError:
        return []


def _logs_of(path: Path, stage: str, streams: Sequence[str], attempt: int | None, *,
             strict: bool) -> list[Log]:
    from blut_core.store import RunDir

    found = attempts(path, stage)
    if attempt is not None and attempt not in found:
        raise ConfigError(f"stage {stage!r} of run {path.name} has no attempt {attempt}",
                          hint=f"its attempts: {', '.join(map(str, found))}" if found
                          else "it has not run")
    chosen = attempt if attempt is not None else (found[-1] if found else None)
    if chosen is None:
        return []
    adir = RunDir(path).attempt_dir(stage, chosen)
    return [Log(stage=stage, attempt=chosen, stream=s, path=adir / f"{s}.log") for s in streams
            if strict or _size(adir / f"{s}.log")]


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _read(path: Path) -> str:
    try:
        return path.read_bytes().decode(errors="replace")
    except OSError:
        return ""


def _tail(text: str, lines: int | None) -> str:
    if lines is None:
        return text
    if lines == 0:
        return ""
    kept = text.splitlines(keepends=True)[-lines:]
    return "".join(kept)


def _print(logs: Sequence[Log], lines: int | None, *, headers: bool) -> None:
    for n, log in enumerate(logs):
        text = _tail(_read(log.path), lines)
        if headers:
            click.echo(("\n" if n else "") + log.header)
        click.echo(text, nl=bool(text) and not text.endswith("\n"))


# -- following -----------------------------------------------------------------------------


class _Watch:
    """What the status stream says so far: each stage's attempts and whether it is done."""

    def __init__(self, path: Path) -> None:
        self.status = path / "status.jsonl"
        self.offset = 0
        self.started: dict[str, int] = {}
        self.final: dict[str, float] = {}     # stage -> monotonic time it ended for good (maybe)
        self.failed: dict[str, float] = {}    # stage -> when a failed attempt ended (a retry may come)
        self.run_over = False

    def read(self) -> None:
        import json

        try:
            with self.status.open("rb") as fh:
                fh.seek(self.offset)
                data = fh.read()
        except OSError:
            return
        end = data.rfind(b"\n") + 1
        self.offset += end
        now = time.monotonic()
        for raw in data[:end].splitlines():
            try:
                ev = json.loads(raw)
            except ValueError:
                continue
            if isinstance(ev, dict):
                self._take(ev, now)

    def _take(self, ev: dict[str, Any], now: float) -> None:
        kind, stage = ev.get("event"), str(ev.get("stage", ""))
        if kind == "run_finished":
            self.run_over = True
        elif kind in ("run_started", "run_resumed"):
            self.run_over = False
        elif kind == "stage_started":
            self.started[stage] = int(ev.get("attempt") or 1)
            self.final.pop(stage, None)
            self.failed.pop(stage, None)
        elif kind == "stage_retrying":
            self.failed.pop(stage, None)
        elif kind == "stage_skipped":
            self.final[stage] = now
        elif kind == "stage_finished":
            if ev.get("state") == "failed" and ev.get("attempt"):
                self.failed[stage] = now
            else:
                self.final[stage] = now

    def done(self, stage: str, now: float) -> bool:
        if stage in self.final:
            return True
        since = self.failed.get(stage)
        return since is not None and now - since >= RETRY_GRACE


def _follow(path: Path, stages: Sequence[str], streams: Sequence[str], attempt: int | None) -> None:
    """Print what the logs of ``stages`` gain until the run (or the one stage) is done.

    Each stage is followed from its last attempt so far (or ``attempt``), and on to the
    attempts that start later, unless ``attempt`` pins one.
    """
    from blut_core.store import RunDir, driver_alive

    rundir = RunDir(path)
    watch = _Watch(path)
    first = {s: attempt or max(attempts(path, s), default=1) for s in stages}
    offsets: dict[Log, int] = {}
    pending: dict[Log, bytes] = {}
    shown: list[Log | None] = [None]
    single = len(stages) == 1 and len(streams) == 1  # no header, until a retry's attempt starts

    def emit(log: Log, data: bytes) -> None:
        if shown[0] != log:
            if not (single and shown[0] is None):
                sys.stdout.write(("\n" if shown[0] is not None else "") + log.header + "\n")
            shown[0] = log
        sys.stdout.write(data.decode(errors="replace"))
        sys.stdout.flush()

    def pump(final: bool) -> None:
        for s in stages:
            numbers = [attempt] if attempt is not None else \
                [n for n in attempts(path, s) if n >= first[s]]
            for n in numbers:
                for st in streams:
                    log = Log(stage=s, attempt=n, stream=st,
                              path=rundir.attempt_dir(s, n) / f"{st}.log")
                    _drain(log, offsets, pending, emit, final=final)

    def over(now: float) -> bool:
        if watch.run_over:
            return True
        if attempt is not None:  # a pinned attempt is over once a later one started
            return all(watch.done(s, now) or watch.started.get(s, 0) > attempt for s in stages)
        return all(watch.done(s, now) for s in stages)

    alive_checked = time.monotonic()
    while True:
        watch.read()
        pump(final=False)
        now = time.monotonic()
        if over(now):
            break
        if now - alive_checked > 2.0:  # a driver killed without a word ends the run too
            alive_checked = now
            if not driver_alive(path):
                break
        time.sleep(POLL)
    pump(final=True)


def _drain(log: Log, offsets: dict[Log, int], pending: dict[Log, bytes],
           emit: Any, *, final: bool) -> None:
    """Emit whole lines ``log`` gained since last time (the rest too when ``final``)."""
    start = offsets.get(log, 0)
    try:
        with log.path.open("rb") as fh:
            fh.seek(start)
            data = fh.read()
    except OSError:
        return
    offsets[log] = start + len(data)
    data = pending.pop(log, b"") + data
    cut = len(data) if final else data.rfind(b"\n") + 1
    if cut < len(data):
        pending[log] = data[cut:]
    if cut:
        emit(log, data[:cut])
