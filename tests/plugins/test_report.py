"""``blut runs report`` and ``blut run --report``: a real run's report, opened in Chromium.

The run mixes what the Gantt chart tells apart: an OOM-killed attempt retried with a larger
cap, a failure retried, a pruned stage, a metric curve, and (in a second run) cached stages.
The figures in the document are checked against the run's status stream, and the page is
rendered by headless Chromium (Debian's ``chromium``) to check the picture is not blank and
shows the outcome colours.
"""

from __future__ import annotations

import collections
import html.parser
import json
import os
import re
import shutil
import struct
import subprocess
import time
import zlib
from collections.abc import Iterator
from importlib import metadata as md
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs
import pytest

from blut_core import (
    CookbookSpec,
    Footprint,
    Plan,
    Recipe,
    RetryOn,
    RetryPolicy,
    Stage,
    hookimpl,
)
from blut_core.cli import main
from blut_core.testing import COOKBOOK_GROUP
from tests.broker import stages_mem
from tests.support import stages
from tests.support.cli import run_blut, start_blut

if TYPE_CHECKING:
    from blut_core import StageContext

# -- a cookbook whose run has every outcome -------------------------------------------------


def learns(ctx: StageContext) -> None:
    """Reports a loss curve over six steps."""
    for step in range(6):
        ctx.log(step=step, loss=round(1.0 / (step + 1), 4))
    (ctx.out_dir / "model.txt").write_text("fitted", encoding="utf-8")


@attrs.frozen(kw_only=True)
class MixedParams:
    hog_mb: int = 192
    tag: str = ""


def mixed(p: MixedParams) -> Plan:
    return Plan.of(
        Stage.call("learn", learns, params={"tag": p.tag}),
        Stage.call("hog", stages_mem.hog, params={"mb": p.hog_mb, "tag": p.tag},
                   footprint=Footprint.fixed("64M"),
                   retry=RetryPolicy(max_attempts=4, delay=0.0, retry_on=RetryOn.OOM)),
        Stage.call("flaky", stages.flaky, params={"tag": p.tag},
                   retry=RetryPolicy(max_attempts=2, delay=0.0)),
        Stage.call("train", stages.reports_nan, inputs=["learn"], params={"tag": p.tag}),
        Stage.call("evaluate", stages.emit, inputs=["train"]),
        Stage.call("summary", stages.emit, inputs=["learn", "hog", "flaky"]),
    )


@hookimpl
def blut_cookbooks() -> Iterator[CookbookSpec]:
    yield CookbookSpec(name="reportbook", summary="A run with every outcome.")


@hookimpl
def blut_recipes() -> Iterator[Recipe]:
    yield Recipe(name="mixed", summary="ok, OOM-killed, retried, pruned, metrics",
                 params=MixedParams, build=mixed)


REPORTBOOK = md.EntryPoint(name="reportbook", value="tests.plugins.test_report", group=COOKBOOK_GROUP)


@pytest.fixture
def cookbook_entry_points() -> list[md.EntryPoint]:
    return [REPORTBOOK]


@pytest.fixture(autouse=True)
def private_ledger(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BLUT_LEDGER", str(tmp_path / "ledger" / "ledger.json"))


# -- reading the document back -----------------------------------------------------------


class Elements(html.parser.HTMLParser):
    """Every element's tag and attributes, in document order."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[tuple[str, dict[str, str]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.found.append((tag, {k: v or "" for k, v in attrs}))


def elements(document: str, tag: str, cls: str | None = None) -> list[dict[str, str]]:
    parser = Elements()
    parser.feed(document)
    return [a for t, a in parser.found if t == tag and (cls is None or cls in a.get("class", "").split())]


def events(run_dir: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (run_dir / "status.jsonl").read_text().splitlines() if line]


def expected_attempts(evs: list[dict[str, Any]]) -> dict[tuple[str, int], dict[str, Any]]:
    """What each attempt's bar must say, from the status stream alone."""
    t0 = evs[0]["t"]
    out: dict[tuple[str, int], dict[str, Any]] = {}
    admitted = {(e["stage"], e["attempt"]): e for e in evs if e["event"] == "stage_admitted"}
    started = {(e["stage"], e["attempt"]): e for e in evs if e["event"] == "stage_started"}
    retried = {(e["stage"], e["attempt"] - 1) for e in evs if e["event"] == "stage_retrying"}
    for e in evs:
        key = (e.get("stage"), e.get("attempt"))
        if e["event"] == "stage_skipped":
            out[(e["stage"], 0)] = {"outcome": "cached", "start": e["t"] - t0}
        elif e["event"] == "stage_finished" and key in started:
            outcome = ("oom" if e["classification"] == "oom" else "retried" if key in retried
                       else e["state"] if e["state"] in ("ok", "pruned", "cancelled") else "failed")
            out[key] = {"outcome": outcome, "duration": e["duration"], "peak": e["peak_bytes"],
                        "cap": e["cap_bytes"], "footprint": admitted[key]["footprint_bytes"],
                        "start": started[key]["t"] - t0, "end": e["t"] - t0}
    return out


def bars(document: str) -> dict[tuple[str, int], dict[str, str]]:
    return {(a["data-stage"], int(a["data-attempt"])): a for a in elements(document, "rect", "attempt")}


# -- the tests ------------------------------------------------------------------------------


@pytest.mark.cgroup
def test_report_figures_match_the_runs_records(invoke, blut_home: Path) -> None:  # type: ignore[no-untyped-def]
    first = invoke("run", "mixed", "--report", "--no-progress", "--json")
    assert first.exit_code == 0, first.output
    run_dir = Path(json.loads(first.stdout)["run_dir"])
    document = (run_dir / "report.html").read_text()
    evs = events(run_dir)
    want = expected_attempts(evs)
    got = bars(document)
    assert set(got) == set(want)
    outcomes = {k: v["outcome"] for k, v in want.items()}
    assert outcomes[("hog", 1)] == "oom" and outcomes[("flaky", 1)] == "retried"
    assert outcomes[("train", 1)] == "pruned" and outcomes[("learn", 1)] == "ok"
    assert max(n for s, n in want if s == "hog") >= 2 and outcomes[("hog", max(
        n for s, n in want if s == "hog"))] == "ok"
    span = float(elements(document, "table", "run")[0]["data-span"])  # the time axis
    for key, w in want.items():
        bar = got[key]
        assert bar["data-outcome"] == w["outcome"], key
        assert bar["fill"] == {"ok": "#2a9d4b", "oom": "#d62828", "retried": "#f08c00",
                               "pruned": "#8e44ad", "cached": "#7d8ca3"}[w["outcome"]], key
        assert float(bar["data-duration"]) == pytest.approx(w["duration"], abs=1e-6), key
        assert int(bar["data-peak"]) == w["peak"] and int(bar["data-cap"]) == w["cap"], key
        assert int(bar["data-footprint"]) == w["footprint"], key
        # where the bar is drawn says when the attempt ran (190 px of names, 890 px of time)
        assert (float(bar["x"]) - 190) / 890 * span == pytest.approx(w["start"], abs=span / 200), key
    caps = [int(got[("hog", n)]["data-cap"]) for n in sorted(n for s, n in got if s == "hog")]
    assert caps == sorted(caps) and caps[0] < caps[-1], "each retry after an OOM gets a larger cap"
    # the metric curve and the attempts table carry the recorded values
    losses = [e["values"]["loss"] for e in evs if e["event"] == "stage_metric"
              and e["stage"] == "learn"]
    curve = [p for p in elements(document, "polyline") if p.get("data-metric") == "loss"
             and p.get("data-stage") == "learn"]
    assert len(curve) == 1 and int(curve[0]["data-points"]) == len(losses) == 6
    assert float(curve[0]["data-last"]) == pytest.approx(losses[-1])
    rows = {(r["data-stage"], int(r["data-attempt"])): r for r in elements(document, "tr", "attempt-row")}
    assert set(rows) == set(want)
    assert all(float(rows[k]["data-duration"]) == pytest.approx(w["duration"], abs=1e-6)
               for k, w in want.items())
    # self-contained: nothing is fetched, nothing runs
    assert not re.search(r"<script|<link|<img|<iframe|\bsrc=|https?://|url\(", document, re.I)

    second = invoke("run", "mixed", "--no-progress", "--json")
    assert second.exit_code == 0, second.output
    second_id = json.loads(second.stdout)["run_id"]
    written = invoke("runs", "report", second_id, "--json")
    assert written.exit_code == 0, written.output
    again = Path(json.loads(written.stdout)["path"]).read_text()
    cached = {k for k, v in bars(again).items() if v["data-outcome"] == "cached"}
    assert {s for s, _ in cached} == {"learn", "hog", "flaky", "summary"}
    assert bars(again)[("train", 1)]["data-outcome"] == "pruned"


def test_report_of_a_running_run_draws_it_as_running(blut_home: Path, tmp_path: Path) -> None:
    proc = start_blut("run", "testbook:long", "--no-progress", home=blut_home, tmp=tmp_path)
    try:
        deadline = time.monotonic() + 60
        run_dir = None
        while time.monotonic() < deadline and run_dir is None:
            for status in (blut_home / "runs").glob("*/status.jsonl"):
                started = {e["stage"] for e in events(status.parent) if e["event"] == "stage_started"}
                if {"slow1", "slow2"} <= started:
                    run_dir = status.parent
            time.sleep(0.1)
        assert run_dir is not None, "the run never started its slow stages"
        result = run_blut("runs", "report", run_dir.name, "-o", "-", home=blut_home, tmp=tmp_path)
        assert result.returncode == 0, result.stderr
        running = {a["data-stage"] for a in elements(result.stdout, "rect", "attempt")
                   if a["data-outcome"] == "running"}
        assert running == {"slow1", "slow2"}
        assert elements(result.stdout, "span", "state")[0]["data-state"] == "running"
    finally:
        run_blut("cancel", "latest", "--wait", "30", home=blut_home, tmp=tmp_path)
        proc.wait(timeout=60)


def test_report_bad_input_is_one_line_and_touches_nothing(app, invoke, capsys,  # type: ignore[no-untyped-def]
                                                          blut_home: Path, tmp_path: Path) -> None:
    def fails(*argv: str) -> list[str]:
        with pytest.raises(SystemExit) as exit_info:
            main(list(argv), app=app)
        assert exit_info.value.code == 2, argv
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 2 and err[0].startswith("Error: ") and err[1].startswith("Hint: "), err
        return err

    assert "no run 'nope'" in fails("runs", "report", "nope")[0]
    assert invoke("run", "mixed", "-p", "hog_mb=16", "--no-progress").exit_code == 0
    missing = tmp_path / "no-such-dir" / "r.html"
    err = fails("runs", "report", "latest", "-o", str(missing))
    assert err == [f"Error: cannot write the report to {missing}: No such file or directory",
                   "Hint: pass -o FILE in a directory you can write to"]
    assert not missing.parent.exists()
    err = fails("runs", "report", "latest", "--format", "pdf")
    assert err == ["Error: no report named 'pdf' is installed", "Hint: available: html"]
    assert not list((blut_home / "runs").glob("*/*report*")), "a failed command wrote nothing"


# -- the picture ------------------------------------------------------------------------------


def read_png(path: Path) -> tuple[int, int, list[bytes]]:
    """Width, height and RGB rows of an 8-bit, non-interlaced PNG (what Chromium writes)."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, chunks, header = 8, b"", b""
    while pos < len(data):
        (length,), kind = struct.unpack(">I", data[pos:pos + 4]), data[pos + 4:pos + 8]
        body = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            header = body
        elif kind == b"IDAT":
            chunks += body
        pos += 12 + length
    width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", header)
    assert depth == 8 and interlace == 0 and colour in (2, 6), (depth, colour, interlace)
    bpp = 3 if colour == 2 else 4
    raw = zlib.decompress(chunks)
    stride = width * bpp
    rows: list[bytes] = []
    prev = bytearray(stride)
    for y in range(height):
        kind, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            left = line[i - bpp] if i >= bpp else 0
            up, corner = prev[i], prev[i - bpp] if i >= bpp else 0
            if kind == 1:
                line[i] = (line[i] + left) & 0xFF
            elif kind == 2:
                line[i] = (line[i] + up) & 0xFF
            elif kind == 3:
                line[i] = (line[i] + (left + up) // 2) & 0xFF
            elif kind == 4:
                p = left + up - corner
                pa, pb, pc = abs(p - left), abs(p - up), abs(p - corner)
                pred = left if pa <= pb and pa <= pc else up if pb <= pc else corner
                line[i] = (line[i] + pred) & 0xFF
        prev = line
        rows.append(bytes(line) if bpp == 3 else bytes(b for j, b in enumerate(line) if j % 4 != 3))
    return width, height, rows


def screenshot(page: Path, out: Path, profile: Path) -> None:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("headless Chromium is not installed (Debian: apt-get install -y chromium)")
    argv = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars",
            "--force-color-profile=srgb", f"--user-data-dir={profile}", f"--screenshot={out}",
            "--window-size=1200,900", page.as_uri()]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=120,
                            env={**os.environ, "HOME": str(profile)})
    assert out.exists(), result.stderr[-2000:]


@pytest.mark.cgroup
@pytest.mark.slow
def test_report_renders_in_chromium(invoke, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    result = invoke("run", "mixed", "--report", "--no-progress", "--json")
    assert result.exit_code == 0, result.output
    page = Path(json.loads(result.stdout)["run_dir"]) / "report.html"
    png = tmp_path / "report.png"
    screenshot(page, png, tmp_path / "chromium-profile")
    width, height, rows = read_png(png)
    assert (width, height) == (1200, 900)
    pixels = collections.Counter(row[i:i + 3] for row in rows for i in range(0, len(row), 3))
    assert pixels[b"\xff\xff\xff"] < 0.97 * width * height, "the page is blank"
    assert len(pixels) > 50, "the page has hardly any colours: nothing was drawn"

    def count(hex_colour: str) -> int:
        want = bytes.fromhex(hex_colour.lstrip("#"))
        return sum(n for p, n in pixels.items() if all(abs(a - b) <= 3 for a, b in zip(p, want, strict=True)))

    # every outcome of the run is on screen, in its colour, as more than a speck
    for outcome, colour in {"ok": "#2a9d4b", "oom": "#d62828", "retried": "#f08c00",
                            "pruned": "#8e44ad"}.items():
        assert count(colour) > 40, f"no {outcome} bar on the screenshot"
