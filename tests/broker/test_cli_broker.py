"""``blut broker`` commands, ``plan``'s warnings, and bad input through the CLI."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import click.testing
import pytest

from blut_core import App, CalibrationKey, CalibrationStore
from blut_core.cli import main

Invoke = Callable[..., click.testing.Result]


def test_probe_json(invoke: Invoke) -> None:
    result = invoke("broker", "probe", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["box_bytes"] > 0 and data["floor_bytes"] > 0 and data["containment"]
    assert invoke("broker", "probe").exit_code == 0


def test_backends(invoke: Invoke) -> None:
    data = json.loads(invoke("broker", "backends", "--json").output)
    assert [b["name"] for b in data][-1] == "bare" and data[-1]["usable"]


def test_estimate_json(invoke: Invoke) -> None:
    result = invoke("broker", "estimate", "memtest:knobs", "-p", "workers=4096", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    [train] = data["stages"]
    assert train["decision"] == "right_size" and 1 <= train["knobs"]["workers"] < 4096
    assert train["cap_bytes"] > train["footprint_bytes"] and train["source"] == "model"
    text = invoke("broker", "estimate", "memtest:hog")
    assert "DECISION" in text.output and "admit" in text.output


def test_calibration_list_and_forget(invoke: Invoke, app: App, blut_home: Path) -> None:
    store = CalibrationStore(blut_home / "calibration.json")
    store.record_peak(CalibrationKey.of("memtest:hog", "hog", {}), 200 << 20, 300 << 20)
    store.record_oom(CalibrationKey.of("memtest:other", "x", {"w": 2}), 100 << 20)
    listed = json.loads(invoke("broker", "calibration", "list", "--json").output)
    assert {e["key"] for e in listed} == {"memtest:hog|hog|", "memtest:other|x|w=2"}
    est = json.loads(invoke("broker", "estimate", "memtest:hog", "--json").output)
    assert est["stages"][0]["source"] == "measured"
    assert est["stages"][0]["footprint_bytes"] == 200 << 20
    assert invoke("broker", "calibration", "forget").exit_code != 0
    gone = json.loads(invoke("broker", "calibration", "forget", "--recipe", "memtest:other",
                             "--json").output)
    assert [e["stage"] for e in gone["forgotten"]] == ["x"]
    assert len(json.loads(invoke("broker", "calibration", "list", "--json").output)) == 1
    est = json.loads(invoke("broker", "estimate", "memtest:hog", "--no-calibration", "--json").output)
    assert est["stages"][0]["source"] == "model"


def test_ledger_json(invoke: Invoke, private_ledger: Path) -> None:
    data = json.loads(invoke("broker", "ledger", "--json").output)
    assert data == {"path": str(private_ledger), "bookings": []}


def test_plan_flags_undeclared_footprints(invoke: Invoke) -> None:
    result = invoke("plan", "memtest:undeclared", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["stages"][0]["memory"]["declared"] is False
    assert any("declares no footprint" in w for w in data["warnings"])


def test_plan_warns_loudly_without_containment(invoke: Invoke, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BLUT_CONTAINMENT", "bare")
    data = json.loads(invoke("plan", "memtest:hog", "--json").stdout)
    assert any("NO MEMORY CONTAINMENT" in w for w in data["warnings"])


@pytest.mark.parametrize(("args", "words"), [
    (["plan", "memtest:bad", "-p", "memory=12Gb"], "cannot read '12Gb'"),
    (["plan", "memtest:bad", "-p", "memory=-1G"], "must be positive"),
    (["plan", "memtest:bad", "-p", "memory=0"], "must be positive"),
    (["run", "memtest:bad", "-p", "memory=nan"], "size"),
    (["broker", "estimate", "memtest:bad", "-p", "memory=12Gb"], "cannot read '12Gb'"),
])
def test_bad_declarations_exit_2_in_one_line(app: App, args: list[str], words: str,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(args, app=app)
    err = capsys.readouterr().err
    assert info.value.code == 2, err
    assert words in err and "Traceback" not in err
    assert err.splitlines()[0].startswith("Error: stage 'bad':")


def test_forced_unusable_backend_exits_2(app: App, monkeypatch: pytest.MonkeyPatch,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    from blut_plugins.systemd.backend import Systemd

    if Systemd().unusable_reason() is None:
        pytest.skip("systemd-run works on this machine")
    monkeypatch.setenv("BLUT_CONTAINMENT", "systemd")
    with pytest.raises(SystemExit) as info:
        main(["run", "memtest:hog", "-p", "mb=16"], app=app)
    assert info.value.code == 2
    assert "forced by BLUT_CONTAINMENT" in capsys.readouterr().err


def test_corrupt_calibration_never_blocks_a_run(app: App, blut_home: Path) -> None:
    from blut_core.run.orchestrate import prepare, start_run

    blut_home.mkdir(parents=True, exist_ok=True)
    (blut_home / "calibration.json").write_text("\x00garbage")
    summary = start_run(app, prepare(app, "memtest:hog", overrides=["mb=16", "declared=128M"]))
    assert summary.outcome == "ok"
    assert list(blut_home.glob("calibration.json.corrupt-*"))
