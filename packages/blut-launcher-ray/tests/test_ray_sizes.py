"""num_cpus and memory= checked before they reach Ray (what Ray does with them: sizes.py)."""

from __future__ import annotations

from typing import Any

import pytest

pytest.importorskip("blut_launcher_ray", reason="not installed: pip install -e packages/blut-launcher-ray")

from blut_launcher_ray.sizes import (
    MAX_MEMORY,
    SizeError,
    TaskSize,
    infeasible_reason,
    ray_memory,
    ray_num_cpus,
    task_size,
)

GIB = 1 << 30


@pytest.mark.parametrize(("cpus", "expected"), [
    (1, 1.0), (2, 2.0), (0.5, 0.5), (1.5, 1.5), (0.0001, 0.0001), (0.25, 0.25), (0.1 + 0.2, 0.3), (64, 64.0),
])
def test_cpus_ray_takes_as_they_are(cpus: float, expected: float) -> None:
    assert ray_num_cpus(cpus) == expected


@pytest.mark.parametrize(("cpus", "message"), [
    (0, "num_cpus: must be more than 0 (0 books no CPU at all"),
    (0.0, "num_cpus: must be more than 0"),
    (-1, "num_cpus: must be more than 0"),
    (float("nan"), "num_cpus: must be more than 0"),
    (float("inf"), "num_cpus: must be more than 0"),
    (0.00001, "num_cpus: must be a multiple of 0.0001"),  # Ray refuses it
    (1.00001, "num_cpus: must be a multiple of 0.0001"),  # Ray silently makes it 1.0
    (True, "num_cpus: must be a number, not bool"),
    ("1", "num_cpus: must be a number, not str"),
])
def test_cpus_ray_would_refuse_or_misread(cpus: float, message: str) -> None:
    with pytest.raises(SizeError) as info:
        ray_num_cpus(cpus)
    assert str(info.value).startswith(message) and info.value.field == "num_cpus"


@pytest.mark.parametrize("memory", [1, 100 << 20, 24 * GIB, MAX_MEMORY])
def test_memory_ray_can_hold(memory: int) -> None:
    assert ray_memory(memory) == memory


@pytest.mark.parametrize(("memory", "message"), [
    (0, "memory: must be more than 0 bytes (0 books no memory at all"),
    (-1, "memory: must be more than 0 bytes"),
    (MAX_MEMORY + 1, "memory: 922337203685478 bytes overflows Ray's resource counter"),
    (10**15, "memory: 1000000000000000 bytes overflows"),  # scheduled and ran on a 24 GiB node
    (2**63, "memory: 9223372036854775808 bytes overflows"),
    (1.5, "memory: must be a whole number of bytes, not float"),
    (True, "memory: must be a whole number of bytes, not bool"),
])
def test_memory_ray_would_refuse_or_overflow(memory: int, message: str) -> None:
    with pytest.raises(SizeError) as info:
        ray_memory(memory)
    assert str(info.value).startswith(message), str(info.value)


def test_max_memory_is_rays_fixed_point_limit() -> None:
    assert MAX_MEMORY == 922_337_203_685_477  # (2**63 - 1) // 10_000, about 838 TiB


def test_task_size_and_its_options() -> None:
    assert task_size(2, 3 * GIB) == TaskSize(2.0, 3 * GIB)
    assert task_size(0.5, None).options() == {"num_cpus": 0.5}
    assert TaskSize(1.0, 100).options() == {"num_cpus": 1.0, "memory": 100}
    with pytest.raises(SizeError, match=r"^memory"):
        task_size(1, 0)


NODES: list[dict[str, Any]] = [
    {"NodeID": "a", "Alive": True, "Resources": {"CPU": 1.0, "memory": 7.5e9, "node1": 1.0}},
    {"NodeID": "b", "Alive": True, "Resources": {"CPU": 2.0, "memory": 4e9, "node2": 1.0}},
    {"NodeID": "c", "Alive": False, "Resources": {"CPU": 64.0, "memory": 1e12}},
]


def test_a_task_some_live_node_can_run() -> None:
    assert infeasible_reason(TaskSize(1.0, 7 * 10**9), NODES) is None
    assert infeasible_reason(TaskSize(2.0, 4 * 10**9), NODES) is None
    assert infeasible_reason(TaskSize(2.0), [n["Resources"] for n in NODES[:2]]) is None


def test_a_task_no_live_node_can_run() -> None:
    reason = infeasible_reason(TaskSize(2.0, 5 * 10**9), NODES)  # CPUs on one node, memory on the other
    assert reason is not None and "no live node has 2 CPU and 5000000000 bytes" in reason
    assert "pending for ever" in reason
    assert infeasible_reason(TaskSize(3.0), NODES) is not None  # the dead node does not count
    assert infeasible_reason(TaskSize(1.0), []) is not None
