"""``blut tui``: the cockpit over real runs, driven by textual's pilot.

Each view's screen is read back as text, its volatile fields (run ids, times, sizes, paths,
pids) masked, and compared with the snapshot below: a change in what a person sees fails
here. A live run is cancelled from the cockpit after its confirmation.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest

from blut_core import App
from blut_core.store import load_run, read_events
from tests.support.cli import blut_argv, blut_env, run_blut, start_blut

pytest.importorskip("textual", reason="blut tui needs textual (pip install textual)")

from blut_plugins.tui.app import Cockpit
from blut_plugins.tui.check import screen_text

SIZE = (140, 30)  # wide enough that no row of the snapshots is cut

MASKS = [
    (re.compile(r"(/[\w.@+-]+)+"), "<PATH>"),
    (re.compile(r"\d{8}-\d{6}-[a-z0-9-]+?-[0-9a-f]{6}"), "<RUN>"),
    (re.compile(r"\b\d+(\.\d+)? (B|KiB|MiB|GiB|TiB)\b"), "<SIZE>"),
    (re.compile(r"\b\d+[smhd] ago\b"), "<AGO>"),
    (re.compile(r"\b\d+(\.\d+)?s\b"), "<T>"),
    (re.compile(r"\bpid \d+"), "pid <PID>"),
]


def masked(text: str) -> str:
    """The screen without what changes from run to run; runs of blanks and borders folded."""
    out = []
    for line in text.splitlines():
        for pattern, repl in MASKS:
            line = pattern.sub(repl, line)
        line = re.sub(r"[━╸╺\u2580-\u259f]+", "", line)  # tab underlines, block borders, scroll bars
        line = re.sub(r"\s+", " ", line).strip()
        if line:
            out.append(line)
    return "\n".join(out)


def run(coro: Callable[[], Coroutine[Any, Any, None]]) -> None:
    asyncio.run(coro())


@pytest.fixture(autouse=True)
def private_ledger(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "ledger" / "ledger.json"
    monkeypatch.setenv("BLUT_LEDGER", str(path))
    return path


def views(app: App, stage: str | None = None) -> dict[str, str]:
    """Every view's masked screen, with ``stage`` picked in the run view."""
    screens: dict[str, str] = {}

    async def drive() -> None:
        cockpit = Cockpit(app, refresh=3600.0)
        async with cockpit.run_test(size=SIZE) as pilot:
            await pilot.pause()
            if stage is not None:
                cockpit.selected_stage = stage
                cockpit.reload()
            for view in ("runs", "run", "log", "metrics", "memory"):
                cockpit.action_view(view)
                await pilot.pause()
                screens[view] = masked(screen_text(cockpit))

    run(drive)
    return screens


HEADER = "⭘ blut\nRuns [1] Run [2] Log [3] Metrics [4] Memory [5]"
FOOTER = "1 runs 2 run 3 log 4 metrics 5 memory c cancel run r refresh q quit ^p palette"

SNAPSHOTS = {
    "runs": """
run recipe state started wall stages schedule
<RUN> testbook:nan ok <AGO> <T> ok=2 pruned=3
""",
    "run": """
<RUN> testbook:nan ok 5 stages
step 1 step 2 step 3 step 4
✔ a ✂ train ✂ evaluate ✂ report
✔ other
stage state attempt inputs estimate cap live peak time note
a ok 1 <SIZE> <SIZE> - <SIZE> <T>
train pruned 1 a <SIZE> <SIZE> - <SIZE> <T> pruned on metrics {'loss': 'nan'}
evaluate pruned train - - - - - input 'train' pruned
report pruned evaluate - - - - - input 'evaluate' pruned
other ok 1 a <SIZE> <SIZE> - <SIZE> <T>
""",
    "log": """
train, attempt 1: <PATH>
── stdout ──
(empty)
── stderr ──
(empty)
""",
    "metrics": """
a · value: last 1, min 1, max 1 (1 values)
other · value: last 1, min 1, max 1 (1 values)
train · loss: last 0.5, min 0.5, max 1 (2 values)
""",
    "memory": """
box <SIZE> · free <SIZE> · booked <SIZE> in 0 booking(s)
ledger <PATH>
run stage booked outstanding live peak cgroup
nothing is booked: no stage of any run is running
""",
}


def test_every_view_matches_its_snapshot(app: App, invoke) -> None:  # type: ignore[no-untyped-def]
    assert invoke("run", "nan", "--no-progress").exit_code == 0
    screens = views(app, stage="train")
    if os.environ.get("BLUT_SHOW_SNAPSHOTS"):
        print(json.dumps({v: screens[v][len(HEADER):-len(FOOTER)].strip() for v in screens}, indent=1))
    for view, want in SNAPSHOTS.items():
        got = screens[view]
        assert got.startswith(HEADER) and got.endswith(FOOTER), (view, got)
        body = got[len(HEADER):-len(FOOTER)].strip()
        assert body.splitlines()[:len(want.strip().splitlines())] == want.strip().splitlines(), \
            f"view {view} changed:\n{body}"


def test_views_draw_without_any_run(app: App) -> None:
    screens = views(app)
    assert "no runs yet: start one with `blut run RECIPE`" in screens["runs"]
    assert "no run selected: pick one in Runs [1]" in screens["run"]
    assert "no stage selected" in screens["log"]
    assert "no metrics reported: no run selected" in screens["metrics"]
    assert "nothing is booked" in screens["memory"]


def _wait_running(home: Path, stages: set[str], timeout: float = 60) -> Path:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for status in (home / "runs").glob("*/status.jsonl"):
            started = {e.get("stage") for e in read_events(status) if e.get("event") == "stage_started"}
            if stages <= started:
                return status.parent
        time.sleep(0.1)
    raise AssertionError(f"{stages} never started")


@pytest.mark.slow
@pytest.mark.cgroup
def test_a_live_run_shows_live_memory_and_is_cancelled_after_confirmation(
        app: App, blut_home: Path, tmp_path: Path) -> None:
    proc = start_blut("run", "testbook:long", "--no-progress", home=blut_home, tmp=tmp_path)
    try:
        run_dir = _wait_running(blut_home, {"slow1", "slow2"})

        async def drive() -> None:
            cockpit = Cockpit(app, refresh=0.5)
            async with cockpit.run_test(size=SIZE) as pilot:
                await pilot.pause()
                assert cockpit.detail is not None and cockpit.detail.run.run_id == run_dir.name
                cockpit.action_view("run")
                await pilot.pause(0.6)
                stages = {s.name: s for s in cockpit.detail.stages}
                assert stages["slow1"].state == stages["slow2"].state == "running"
                text = masked(screen_text(cockpit))
                assert re.search(r"^slow1 running 1 quick <SIZE> <SIZE> <SIZE> - <T>", text, re.M), text
                cockpit.action_view("memory")
                await pilot.pause()
                text = masked(screen_text(cockpit))
                assert re.search(r"^<RUN> slow1 <SIZE> <SIZE> <SIZE> <SIZE> <PATH>$", text, re.M), text
                booked = {b.stage: b for b in cockpit.machine.bookings}  # type: ignore[union-attr]
                assert {"slow1", "slow2"} <= set(booked)
                assert all(booked[s].run_id == run_dir.name and booked[s].live for s in ("slow1", "slow2"))
                await pilot.press("c")
                await pilot.pause()
                assert f"Cancel run {run_dir.name}" in screen_text(cockpit)
                await pilot.press("n")
                await pilot.pause()
                assert "Cancel run" not in screen_text(cockpit)
                assert load_run(run_dir).state == "running", "answering no keeps the run"
                await pilot.press("c")
                await pilot.pause()
                await pilot.press("y")
                deadline = time.monotonic() + 40
                while load_run(run_dir).state == "running" and time.monotonic() < deadline:
                    await pilot.pause(0.2)
                assert load_run(run_dir).state == "cancelled"
                await pilot.pause(1.0)
                cockpit.action_view("runs")
                await pilot.pause()
                assert re.search(r"^<RUN> testbook:long cancelled", masked(screen_text(cockpit)), re.M)

        run(drive)
        assert proc.wait(timeout=60) == 130
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.slow
def test_check_draws_every_view_headless(blut_home: Path, tmp_path: Path) -> None:
    empty = run_blut("tui", "--check", home=blut_home, tmp=tmp_path)
    assert empty.returncode == 0, empty.stderr
    assert [line.split()[:2] for line in empty.stdout.splitlines()] == [
        [v, "ok"] for v in ("runs", "run", "log", "metrics", "memory")]
    assert run_blut("run", "testbook:diamond", home=blut_home, tmp=tmp_path).returncode == 0
    result = run_blut("tui", "--check", home=blut_home, tmp=tmp_path)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert [line.split()[:2] for line in lines] == [
        [v, "ok"] for v in ("runs", "run", "log", "metrics", "memory", "cancel")]
    assert "testbook:diamond" in lines[1]


def test_bad_input_is_one_line_exit_2(blut_home: Path, tmp_path: Path) -> None:
    for argv, message in [(["tui", "--run", "nope"], "Error: no run 'nope' under"),
                          (["tui"], "Error: blut tui needs a terminal"),
                          (["tui", "--refresh", "0"], "invalid value for '--refresh'")]:
        result = subprocess.run([*blut_argv(), *argv], capture_output=True, text=True,
                                env=blut_env(blut_home, tmp_path), stdin=subprocess.DEVNULL, timeout=60)
        assert result.returncode == 2, (argv, result.stderr)
        assert message.lower() in result.stderr.lower(), (argv, result.stderr)
        assert "Traceback" not in result.stderr, (argv, result.stderr)


def test_help_does_not_import_textual(tmp_path: Path) -> None:
    code = ("import sys\nfrom blut_core.cli import main\ntry:\n    main(['tui', '--help'])\n"
            "except SystemExit:\n    pass\nprint(json.dumps('textual' in sys.modules), file=sys.stderr)")
    r = subprocess.run([sys.executable, "-c", "import json\n" + code], capture_output=True, text=True,
                       env={"BLUT_HOME": str(tmp_path), "PATH": "/usr/bin:/bin", "BLUT_NO_STALE_CHECK": "1"})
    assert json.loads(r.stderr.strip().splitlines()[-1]) is False
