"""Plan validation names the stages at fault; ordering is deterministic."""

from __future__ import annotations

import pytest

from blut_core import Plan, PlanError, Stage
from tests.support import stages


def s(name: str, *inputs: str) -> Stage:
    return Stage.call(name, stages.noop, inputs=list(inputs))


def test_cycle_names_its_stages() -> None:
    with pytest.raises(PlanError) as err:
        Plan.of(s("a"), s("b", "a", "d"), s("c", "b"), s("d", "c"))
    assert "b -> c -> d -> b" in err.value.message or "d -> b -> c -> d" in err.value.message


def test_self_loop() -> None:
    with pytest.raises(PlanError, match="'a'"):
        Plan.of(s("a", "a"))


def test_dangling_input_names_stage_and_input() -> None:
    with pytest.raises(PlanError) as err:
        Plan.of(s("a"), s("b", "ghost"))
    assert "'b'" in err.value.message and "ghost" in err.value.message


def test_duplicate_names() -> None:
    with pytest.raises(PlanError, match="duplicate stage names: a"):
        Plan.of(s("a"), s("a"))


def test_empty_plan() -> None:
    with pytest.raises(PlanError, match="no stages"):
        Plan.of()


def test_params_must_be_json() -> None:
    with pytest.raises(PlanError, match="'a'"):
        Plan.of(Stage.call("a", stages.noop, params={"x": object()}))
    with pytest.raises(PlanError, match="'a'"):
        Plan.of(Stage.call("a", stages.noop, params={"x": float("nan")}))


def test_bad_stage_name() -> None:
    with pytest.raises(PlanError, match="not valid"):
        Stage.call("has space", stages.noop)


def test_lambda_is_refused() -> None:
    with pytest.raises(PlanError, match="not a module-level function"):
        Stage.call("a", lambda ctx: None)


def test_shell_string_needs_shell_flag() -> None:
    with pytest.raises(PlanError, match="shell=True"):
        Stage.command("a", "echo hi | wc")
    assert Stage.command("a", "echo hi | wc", shell=True).argv == ("/bin/sh", "-c", "echo hi | wc")


def test_topological_order_keeps_declaration_order_for_ties() -> None:
    plan = Plan.of(s("z"), s("y"), s("x", "z"), s("w", "x", "y"))
    assert [t.name for t in plan.topological()] == ["z", "y", "x", "w"]
    assert plan.downstream("z") == {"x", "w"}


def test_inputs_accept_stage_objects() -> None:
    a = s("a")
    b = Stage.call("b", stages.noop, inputs=[a])
    assert b.inputs == ("a",)


def test_bad_command_placeholder_is_a_plan_error() -> None:
    with pytest.raises(PlanError) as err:
        Plan.of(s("a"), Stage.command("b", ["cat", "{inputs[nope]}/x"], inputs=["a"]))
    assert "stage 'b'" in err.value.message and "inputs[nope]" in err.value.message
    with pytest.raises(PlanError, match="bad placeholder"):
        Plan.of(Stage.command("c", ["echo", "{output}"]))
    ok = Plan.of(s("a"), Stage.command("b", ["cp", "{inputs[a]}/f", "{out}/{{literal}}"],
                                       inputs=["a"], params={"k": 1}))
    assert len(ok) == 2


def test_retry_policy_accepts_enum_names_as_strings() -> None:
    from blut_core import Backoff, RetryOn, RetryPolicy

    policy = RetryPolicy(max_attempts=3, retry_on="oom", backoff="fixed")  # type: ignore[arg-type]
    assert policy.retry_on is RetryOn.OOM and policy.backoff is Backoff.FIXED
    with pytest.raises(ValueError):
        RetryPolicy(retry_on="sometimes")  # type: ignore[arg-type]
