"""Admission decisions, every branch, as pure functions."""

from __future__ import annotations

from collections.abc import Mapping

from blut_core import Budget, Knob
from blut_core.broker.admission import ADMIT, REFUSE, RIGHT_SIZE, WAIT, admit, cap_for, decide
from blut_core.broker.config import BrokerConfig, default_floor
from blut_core.model.sizes import GiB, MiB, TiB

BOX = Budget(box=24 * GiB, available=20 * GiB, booked=4 * GiB, floor=2 * GiB)  # free: 14 GiB


def flat(n: int):  # type: ignore[no-untyped-def]
    return lambda _d: n


def per_worker(base: int, each: int):  # type: ignore[no-untyped-def]
    return lambda d: base + d["workers"] * each


def headroom(fp: int) -> int:
    return BrokerConfig().headroom_for(fp)


def test_budget() -> None:
    assert BOX.ceiling == 22 * GiB and BOX.free == 14 * GiB
    assert Budget(box=4 * GiB, available=1 * GiB, booked=2 * GiB, floor=1 * GiB).free == 0


def test_decide_branches() -> None:
    assert decide(1 * GiB, BOX) == ADMIT
    assert decide(14 * GiB, BOX) == ADMIT      # boundary admits
    assert decide(14 * GiB + 1, BOX) == WAIT
    assert decide(22 * GiB, BOX) == WAIT
    assert decide(22 * GiB + 1, BOX) == REFUSE
    assert decide(10 * TiB, Budget(box=0, available=0, booked=0, floor=0)) == ADMIT  # no data


def test_admit_with_cap() -> None:
    a = admit("s", flat(1 * GiB), {}, {}, BOX, headroom)
    assert a.decision == ADMIT and a.footprint == 1 * GiB
    assert a.cap == 1 * GiB + -(-GiB // 10)
    assert a.launches and "fits" in a.reason


def test_cap_never_above_what_the_box_gives() -> None:
    assert cap_for(22 * GiB, 2 * GiB, BOX) == 22 * GiB
    assert cap_for(1 * GiB, 64 * MiB, BOX) == 1 * GiB + 64 * MiB


def test_wait_and_refuse() -> None:
    w = admit("s", flat(16 * GiB), {}, {}, BOX, headroom)
    assert w.decision == WAIT and w.cap is None and "free now" in w.reason
    r = admit("big", flat(30 * GiB), {}, {}, BOX, headroom)
    assert r.decision == REFUSE and not r.launches
    assert "'big'" in r.reason and "22.0 GiB" in r.reason and "24.0 GiB box" in r.reason


def test_right_size_chooses_the_largest_that_fits() -> None:
    need = per_worker(2 * GiB, 3 * GiB)           # 8 workers: 26 GiB; free 14 GiB → 4 workers
    a = admit("t", need, {"workers": 8}, {"workers": Knob(minimum=1)}, BOX, headroom)
    assert a.decision == RIGHT_SIZE and a.knobs == {"workers": 4} and a.footprint == 14 * GiB
    assert "workers 8 → 4" in a.reason


def test_right_size_two_knobs_in_declaration_order() -> None:
    def need(d: Mapping[str, int]) -> int:
        return GiB + d["workers"] * 2 * GiB + d["batch"] * 256 * MiB
    knobs = {"workers": Knob(minimum=1), "batch": Knob(minimum=4)}
    a = admit("t", need, {"workers": 8, "batch": 64}, knobs, BOX, headroom)
    assert a.decision == RIGHT_SIZE
    assert need(a.drivers) <= BOX.free
    assert a.knobs["workers"] == 6 and a.knobs["batch"] == 4   # workers first, batch gets the rest


def test_right_size_refuses_when_even_the_minimum_never_fits() -> None:
    a = admit("t", per_worker(30 * GiB, GiB), {"workers": 8}, {"workers": Knob(minimum=1)}, BOX, headroom)
    assert a.decision == REFUSE and "even at workers=1" in a.reason


def test_right_size_waits_when_the_minimum_fits_only_later() -> None:
    a = admit("t", per_worker(15 * GiB, GiB), {"workers": 8}, {"workers": Knob(minimum=1)}, BOX, headroom)
    assert a.decision == WAIT and a.drivers == {"workers": 1}


def test_right_size_when_the_request_never_fits_but_fewer_do() -> None:
    a = admit("t", per_worker(GiB, GiB), {"workers": 100}, {"workers": Knob(minimum=1)}, BOX, headroom)
    assert a.decision == RIGHT_SIZE and a.knobs == {"workers": 13}


def test_defaults_scale_with_the_box() -> None:
    assert default_floor(4 * GiB) == 1 * GiB
    assert default_floor(24 * GiB) == 24 * GiB // 10
    assert 3 * GiB < default_floor(62 * GiB) < 4 * GiB
    assert 60 * GiB < default_floor(2 * TiB) < 64 * GiB
    cfg = BrokerConfig()
    assert cfg.headroom_for(10 * MiB) == 64 * MiB and cfg.headroom_for(10 * GiB) == GiB
    assert cfg.step_for(4 * GiB) == 64 * MiB and cfg.step_for(2 * TiB) == 32 * GiB


def test_config_from_environ() -> None:
    cfg = BrokerConfig.from_environ({"BLUT_FLOOR": "5%", "BLUT_HEADROOM": "256M",
                                     "BLUT_ESCALATION_STEP": "1G", "BLUT_ADMISSION_TIMEOUT": "2"})
    assert cfg.floor_for(100 * GiB) == 5 * GiB and cfg.headroom_for(GiB) == 256 * MiB
    assert cfg.step_for(GiB) == GiB and cfg.wait_timeout == 2.0
    assert BrokerConfig.from_environ({"BLUT_FLOOR": "3G"}).floor_for(100 * GiB) == 3 * GiB


def test_config_bad_environ() -> None:
    import pytest

    from blut_core import ConfigError

    for env in ({"BLUT_FLOOR": "-1G"}, {"BLUT_HEADROOM": "12Gb"}, {"BLUT_FLOOR": "150%"},
                {"BLUT_ADMISSION_TIMEOUT": "soon"}, {"BLUT_ESCALATION_STEP": "0"}):
        with pytest.raises(ConfigError):
            BrokerConfig.from_environ(env)
