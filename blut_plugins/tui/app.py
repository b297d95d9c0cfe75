"""The cockpit: a textual app over :mod:`blut_plugins.tui.data`.

Five views, one tab each: **Runs** (live and past), **Run** (the selected run's DAG with
stage states, and per stage estimate, cap, live use and peak), **Log** (a live tail of the
selected stage's latest attempt), **Metrics** (a sparkline per stage and metric) and
**Memory** (the box, what is free, what is booked per run and stage). ``c`` cancels the
selected run after a confirmation. Everything is re-read every ``refresh`` seconds.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from rich.table import Table
from rich.text import Text
from textual import on, work
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Grid, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import (
    Button,
    DataTable,
    Footer,
    Header,
    Label,
    Log,
    Sparkline,
    Static,
    TabbedContent,
    TabPane,
)

from blut_core import format_size
from blut_plugins.tui import data

if TYPE_CHECKING:
    from blut_core import App as BlutApp

VIEWS = ("runs", "run", "log", "metrics", "memory")
STYLE = {"running": "bold cyan", "retrying": "yellow", "ok": "green", "cached": "dim green",
         "failed": "bold red", "refused": "bold red", "pruned": "magenta", "cancelled": "red",
         "upstream_failed": "red", "pending": "dim", "interrupted": "yellow"}
GLYPH = {"running": "▶", "ok": "✔", "cached": "✔", "failed": "✘", "refused": "✘",
         "pruned": "✂", "cancelled": "■", "upstream_failed": "·", "retrying": "↻", "pending": "○"}


def _size(n: int | None) -> str:
    return "-" if n is None else format_size(n)


def _secs(s: float | None) -> str:
    return "-" if s is None else f"{s:.2f}s"


def styled(state: str) -> Text:
    return Text(state, style=STYLE.get(state, ""))


def dag(detail: data.RunDetail) -> Table:
    """The run's stages in columns by depth (a stage's inputs are in the columns left of it)."""
    table = Table(box=None, padding=(0, 2), show_header=True, header_style="bold")
    depth = max((s.depth for s in detail.stages), default=0)
    columns: list[list[data.StageRow]] = [[] for _ in range(depth + 1)]
    for s in detail.stages:
        columns[s.depth].append(s)
    for i in range(depth + 1):
        table.add_column(f"step {i + 1}")
    for r in range(max((len(c) for c in columns), default=0)):
        cells = []
        for col in columns:
            if r < len(col):
                s = col[r]
                cells.append(Text(f"{GLYPH.get(s.state, '?')} {s.name}", style=STYLE.get(s.state, "")))
            else:
                cells.append(Text(""))
        table.add_row(*cells)
    return table


class ConfirmCancel(ModalScreen[bool]):
    """Ask before cancelling a run: ``y`` cancels, ``n`` or Escape keeps it running."""

    BINDINGS: ClassVar = [Binding("y", "answer(True)", "cancel the run"),
                          Binding("n,escape", "answer(False)", "keep it running")]
    DEFAULT_CSS = """
    ConfirmCancel { align: center middle; }
    ConfirmCancel > Grid { grid-size: 2; grid-gutter: 1 2; padding: 1 2; width: 64; height: 11;
                           border: thick $error; background: $surface; }
    ConfirmCancel Label { column-span: 2; width: 100%; }
    ConfirmCancel Button { width: 100%; }
    """

    def __init__(self, run: data.RunRow, running: int) -> None:
        super().__init__()
        self.run = run
        self.running = running

    def compose(self) -> ComposeResult:
        with Grid():
            yield Label(f"Cancel run {self.run.run_id} ({self.run.recipe})?\n"
                        f"{self.running} stage(s) running will be killed.", id="question")
            yield Button("Cancel the run (y)", variant="error", id="yes")
            yield Button("Keep it (n)", variant="primary", id="no")

    def action_answer(self, answer: bool) -> None:
        self.dismiss(answer)

    @on(Button.Pressed)
    def pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")


class Cockpit(App[None]):
    """``blut tui``."""

    TITLE = "blut"
    BINDINGS: ClassVar = [
        Binding("1", "view('runs')", "runs"), Binding("2", "view('run')", "run"),
        Binding("3", "view('log')", "log"), Binding("4", "view('metrics')", "metrics"),
        Binding("5", "view('memory')", "memory"), Binding("c", "cancel_run", "cancel run"),
        Binding("r", "refresh", "refresh"), Binding("q", "quit", "quit"),
    ]
    CSS = """
    #dag { height: auto; max-height: 12; padding: 0 1; }
    #run-title, #memory-title { padding: 0 1; text-style: bold; }
    .spark-label { padding: 0 1; }
    Sparkline { height: 2; margin: 0 1 1 1; }
    """

    def __init__(self, blut: BlutApp, *, refresh: float = 1.5, run: str | None = None) -> None:
        super().__init__()
        self.blut = blut
        self.refresh_seconds = refresh
        self.selected_run: str | None = run
        self.selected_stage: str | None = None
        self.rows: list[data.RunRow] = []
        self.detail: data.RunDetail | None = None
        self.machine: data.Machine | None = None
        self.read_runs: dict[Any, Any] = {}  # what data.runs read, by run directory

    # -- layout -------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield Header()
        with TabbedContent(initial="runs"):
            with TabPane("Runs [1]", id="runs"):
                yield DataTable(id="runs-table", cursor_type="row", zebra_stripes=True)
            with TabPane("Run [2]", id="run"):
                yield Static("no run selected: pick one in Runs [1]", id="run-title")
                yield Static(id="dag")
                yield DataTable(id="stages-table", cursor_type="row")
            with TabPane("Log [3]", id="log"):
                yield Log(id="log-view", highlight=False)
            with TabPane("Metrics [4]", id="metrics"):
                yield VerticalScroll(id="metrics-box")
            with TabPane("Memory [5]", id="memory"):
                yield Static(id="memory-title")
                yield DataTable(id="bookings-table", cursor_type="row")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#runs-table", DataTable).add_columns(
            "run", "recipe", "state", "started", "wall", "stages", "schedule")
        self.query_one("#stages-table", DataTable).add_columns(
            "stage", "state", "attempt", "inputs", "estimate", "cap", "live", "peak", "time", "note")
        self.query_one("#bookings-table", DataTable).add_columns(
            "run", "stage", "booked", "outstanding", "live", "peak", "cgroup")
        self.reload()
        self.set_interval(self.refresh_seconds, self.reload)

    # -- data ---------------------------------------------------------------------------

    def reload(self) -> None:
        """Read everything again and redraw every view."""
        self.rows = data.runs(self.blut, cache=self.read_runs)
        self.machine = data.machine(self.blut)
        if self.selected_run is None and self.rows:
            live = [r for r in self.rows if r.state == "running"]
            self.selected_run = (live or self.rows)[0].run_id
        row = next((r for r in self.rows if r.run_id == self.selected_run), None)
        self.detail = data.detail(self.blut, row, self.machine) if row is not None else None
        if self.detail and (self.selected_stage is None or self.selected_stage not in
                            {s.name for s in self.detail.stages}):
            running = [s.name for s in self.detail.stages if s.state == "running"]
            names = [s.name for s in self.detail.stages]
            self.selected_stage = (running or names)[0] if names else None
        self.draw_runs()
        self.draw_run()
        self.draw_log()
        self.draw_metrics()
        self.draw_memory()

    def draw_runs(self) -> None:
        table = self.query_one("#runs-table", DataTable)
        table.clear()
        for r in self.rows:
            counts = " ".join(f"{k}={v}" for k, v in sorted(r.counts.items()))
            table.add_row(r.run_id, r.recipe, styled(r.state), data.since(r.started),
                          _secs(r.wall), counts, r.schedule or "", key=r.run_id)
        if not self.rows:
            table.add_row("no runs yet: start one with `blut run RECIPE`", "", "", "", "", "", "")

    def draw_run(self) -> None:
        title = self.query_one("#run-title", Static)
        table = self.query_one("#stages-table", DataTable)
        table.clear()
        if self.detail is None:
            title.update("no run selected: pick one in Runs [1]")
            self.query_one("#dag", Static).update("")
            return
        r = self.detail.run
        title.update(Text.assemble(f"{r.run_id}  {r.recipe}  ", styled(r.state),
                                   f"  {len(self.detail.stages)} stages"))
        self.query_one("#dag", Static).update(dag(self.detail))
        for s in self.detail.stages:
            elapsed = s.duration if s.duration is not None else (
                None if s.started is None or s.state != "running" else max(0.0, _now() - s.started))
            table.add_row(s.name, styled(s.state), str(s.attempt or ""), ", ".join(s.inputs),
                          _size(s.estimate), _size(s.cap), _size(s.live), _size(s.peak),
                          _secs(elapsed), s.note, key=s.name)
        self._restore_cursor(table, self.selected_stage)

    def draw_log(self) -> None:
        log = self.query_one("#log-view", Log)
        log.clear()
        if self.detail is None or self.selected_stage is None:
            log.write_line("no stage selected: pick a run in Runs [1] and a stage in Run [2]")
            return
        stage = next(s for s in self.detail.stages if s.name == self.selected_stage)
        log.write_lines(data.log_tail(self.detail.run, stage))

    def draw_metrics(self) -> None:
        box = self.query_one("#metrics-box", VerticalScroll)
        box.remove_children()
        if self.detail is None or not self.detail.metrics:
            box.mount(Static("no metrics reported" + ("" if self.detail else ": no run selected")))
            return
        widgets: list[Any] = []
        for (stage, name), values in sorted(self.detail.metrics.items())[:40]:
            widgets.append(Label(f"{stage} · {name}: last {values[-1]:.6g}, min {min(values):.6g}, "
                                 f"max {max(values):.6g} ({len(values)} values)",
                                 classes="spark-label"))
            widgets.append(Sparkline(list(values), summary_function=max))
        box.mount_all(widgets)

    def draw_memory(self) -> None:
        m = self.machine
        table = self.query_one("#bookings-table", DataTable)
        table.clear()
        title = self.query_one("#memory-title", Static)
        if m is None:
            title.update("memory: unknown")
            return
        booked = sum(b.booked for b in m.bookings)
        per_run = ", ".join(f"{k} {format_size(v)}" for k, v in m.booked_by_run().items())
        title.update(f"box {_size(m.box)} · free {_size(m.available)} · booked {format_size(booked)}"
                     f" in {len(m.bookings)} booking(s)" + (f" ({per_run})" if per_run else "")
                     + f"\nledger {m.ledger}" + (f" · {m.error}" if m.error else ""))
        for b in m.bookings:
            table.add_row(b.run_id or f"pid {b.pid} (elsewhere)", b.stage, _size(b.booked),
                          _size(b.outstanding), _size(b.live), _size(b.peak), b.cgroup or "-")
        if not m.bookings:
            table.add_row("nothing is booked: no stage of any run is running", "", "", "", "", "", "")

    @staticmethod
    def _restore_cursor(table: DataTable[Any], key: str | None) -> None:
        if key is None:
            return
        for i, row_key in enumerate(table.rows):
            if row_key.value == key:
                table.move_cursor(row=i, animate=False)
                return

    # -- interaction --------------------------------------------------------------------

    @on(DataTable.RowSelected, "#runs-table")
    def run_chosen(self, event: DataTable.RowSelected) -> None:
        if event.row_key.value in {r.run_id for r in self.rows}:
            self.selected_run = event.row_key.value
            self.selected_stage = None
            self.reload()
            self.action_view("run")

    @on(DataTable.RowHighlighted, "#stages-table")
    def stage_chosen(self, event: DataTable.RowHighlighted) -> None:
        if event.row_key is not None and event.row_key.value != self.selected_stage:
            self.selected_stage = event.row_key.value
            self.draw_log()

    @on(DataTable.RowSelected, "#stages-table")
    def stage_opened(self, event: DataTable.RowSelected) -> None:
        self.selected_stage = event.row_key.value
        self.draw_log()
        self.action_view("log")

    def action_view(self, view: str) -> None:
        self.query_one(TabbedContent).active = view

    def action_refresh(self) -> None:
        self.reload()

    def action_cancel_run(self) -> None:
        if self.detail is None:
            self.notify("no run selected", severity="warning")
            return
        run = self.detail.run
        if run.state not in ("running", "interrupted"):
            self.notify(f"run {run.run_id} is not running (it is {run.state})", severity="warning")
            return
        running = sum(1 for s in self.detail.stages if s.state == "running")

        def answered(yes: bool | None) -> None:
            if yes:
                self.notify(f"cancelling {run.run_id} …")
                self.cancel_in_background(run.run_id)

        self.push_screen(ConfirmCancel(run, running), answered)

    @work(thread=True, exclusive=True, group="cancel")
    def cancel_in_background(self, run_id: str) -> None:
        from blut_core import BlutError
        from blut_core.run import cancel_run

        try:
            state = cancel_run(self.blut, run_id, wait=30.0)
        except BlutError as exc:
            self.call_from_thread(self.notify, exc.message, severity="error")
            return
        self.call_from_thread(self.notify, f"{run_id}: {state}")
        self.call_from_thread(self.reload)


def _now() -> float:
    import time

    return time.time()
