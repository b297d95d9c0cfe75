"""Provoke, on a real Ray cluster, each way a task can end, and what Ray says about sizes.

Needs the two-node cluster of tools/cluster (ray-up.sh STATE_DIR --nodes 2, then
``. STATE_DIR/env.sh``); for the memory-monitor case it must have been started with a low
BLUT_RAY_MEMORY_THRESHOLD (e.g. 0.3), else that case is skipped. Takes node2 down and back
with ray-node.sh. Prints one line per case: the exception's type, its Ray bases, how long
Ray took to say so, what blut_launcher_ray.classify makes of it (when installed), and the
first line of its message.

    python packages/blut-launcher-ray/verify_ray_behaviour.py
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import ray

TOOLS = Path(__file__).resolve().parents[2] / "tools" / "cluster"


def describe(exc: BaseException) -> str:
    bases = [c.__name__ for c in type(exc).__mro__[1:] if c.__module__.startswith("ray")]
    try:
        from blut_launcher_ray.classify import classify_task_error

        verdict = classify_task_error(exc)
        said = f"-> {verdict.kind.value}: {verdict.reason[:90]}"
    except ImportError:
        said = ""
    first = (str(exc).strip().splitlines() or [""])[0][:140]
    return f"{type(exc).__name__} {bases} {said}\n      message: {first}"


def outcome(label: str, ref: Any, action: Callable[[], None] | None = None, timeout: float = 120) -> None:
    t0 = time.perf_counter()
    if action is not None:
        action()
    try:
        value = ray.get(ref, timeout=timeout)
        print(f"{label}: returned {value!r} after {time.perf_counter() - t0:.2f}s", flush=True)
    except Exception as exc:
        print(f"{label}: {describe(exc)}  [{time.perf_counter() - t0:.2f}s]", flush=True)


def wait_running(ref: Any, marker: Path, timeout: float = 60) -> None:
    end = time.monotonic() + timeout
    while not marker.exists():
        if time.monotonic() > end:
            raise SystemExit(f"task behind {ref} did not start within {timeout}s")
        time.sleep(0.05)


@ray.remote(max_retries=0)
def fails() -> None:
    raise ValueError("an ordinary error in the stage")


@ray.remote(max_retries=0)
def exits(code: int) -> None:
    os._exit(code)


@ray.remote(max_retries=0)
def kills_itself() -> None:
    os.kill(os.getpid(), 9)


@ray.remote(max_retries=0)
def sleeps(marker: str, seconds: float) -> str:
    Path(marker).write_text(str(os.getpid()))
    time.sleep(seconds)
    return "slept"


@ray.remote(max_retries=0)
def hogs(limit_bytes: int) -> int:
    held = []
    total = 0
    while total < limit_bytes:
        block = bytearray(64 << 20)
        block[::4096] = b"\1" * len(block[::4096])
        held.append(block)
        total += len(block)
        time.sleep(0.02)
    time.sleep(5)
    return total


@ray.remote
class Holder:
    def ping(self) -> str:
        return "pong"

    def die(self) -> None:
        os._exit(1)


def node_cmd(*args: str) -> None:
    state = os.environ["BLUT_RAY_STATE_DIR"]
    subprocess.run([str(TOOLS / "ray-node.sh"), state, *args], check=True)


def sizes() -> None:
    @ray.remote(max_retries=0)
    def nothing() -> str:
        return "ran"

    cases: list[tuple[str, dict[str, Any]]] = [
        ("num_cpus=0", {"num_cpus": 0}),
        ("num_cpus=0.5", {"num_cpus": 0.5}),
        ("num_cpus=1.5", {"num_cpus": 1.5}),
        ("num_cpus=0.00001", {"num_cpus": 0.00001}),
        ("num_cpus=1.00001", {"num_cpus": 1.00001}),
        ("num_cpus=-1", {"num_cpus": -1}),
        ("num_cpus='1'", {"num_cpus": "1"}),
        ("num_cpus=True", {"num_cpus": True}),
        ("memory=0", {"memory": 0}),
        ("memory=1", {"memory": 1}),
        ("memory=1.5", {"memory": 1.5}),
        ("memory=-1", {"memory": -1}),
        ("memory=2**40 (more than the cluster)", {"memory": 2**40}),
        ("memory=10**15", {"memory": 10**15}),
        ("memory=2**63", {"memory": 2**63}),
    ]
    for label, options in cases:
        try:
            ref = nothing.options(**options).remote()
        except Exception as exc:
            print(f"size {label}: rejected at submit: {type(exc).__name__}: {str(exc)[:120]}", flush=True)
            continue
        ready, _ = ray.wait([ref], timeout=5)
        if ready:
            try:
                print(f"size {label}: {ray.get(ref)}", flush=True)
            except Exception as exc:
                print(f"size {label}: failed: {type(exc).__name__}: {str(exc)[:120]}", flush=True)
        else:
            print(f"size {label}: still pending after 5 s (infeasible); cancelling", flush=True)
            ray.cancel(ref)


def main() -> None:
    t0 = time.perf_counter()
    ray.init(address=os.environ["RAY_ADDRESS"], log_to_driver=False)
    alive = [n for n in ray.nodes() if n["Alive"]]  # type: ignore[no-untyped-call]
    print(f"connected in {time.perf_counter() - t0:.2f}s; nodes alive: {len(alive)}", flush=True)
    marks = Path(tempfile.mkdtemp(prefix="blut-ray-verify."))  # a task writes its marker once it runs
    on2 = {"resources": {"node2": 0.01}}

    outcome("ordinary error", fails.remote())
    outcome("os._exit(3) in the task", exits.remote(3))
    outcome("SIGKILL of its own worker", kills_itself.remote())

    m = marks / "cancel"
    ref = sleeps.remote(str(m), 60)
    wait_running(ref, m)
    outcome("ray.cancel (running)", ref, lambda: ray.cancel(ref))
    m = marks / "cancel-force"
    ref = sleeps.remote(str(m), 60)
    wait_running(ref, m)
    outcome("ray.cancel force=True (running)", ref, lambda: ray.cancel(ref, force=True))
    ref = sleeps.options(resources={"no-such-node": 1}).remote(str(marks / "never"), 1)
    time.sleep(0.5)
    outcome("ray.cancel (pending, infeasible)", ref, lambda: ray.cancel(ref))

    holder = Holder.remote()  # type: ignore[attr-defined]
    ray.get(holder.ping.remote())
    outcome("actor process exits during a call", holder.die.remote())
    outcome("call on that dead actor", holder.ping.remote())

    sizes()

    if "RAY_memory_usage_threshold" in os.environ:
        threshold = float(os.environ["RAY_memory_usage_threshold"])  # noqa: SIM112 - Ray's own name
        meminfo = dict(line.split(":", 1) for line in Path("/proc/meminfo").read_text().splitlines())
        total = int(meminfo["MemTotal"].split()[0]) * 1024
        used = total - int(meminfo["MemAvailable"].split()[0]) * 1024
        need = int(threshold * total) - used + (1 << 30)
        if 0 < need <= 6 << 30:
            outcome(f"memory monitor (threshold {threshold}, task grows to {need >> 20} MiB)",
                    hogs.remote(need), timeout=180)
        else:
            print(f"memory monitor: skipped, would need {need >> 20} MiB", flush=True)
    else:
        print("memory monitor: skipped (cluster not started with BLUT_RAY_MEMORY_THRESHOLD)")

    m = marks / "node"
    ref = sleeps.options(**on2).remote(str(m), 300)
    wait_running(ref, m)
    outcome("node2 killed (ray-node.sh down) under a running task", ref, lambda: node_cmd("down", "node2"))
    ref = sleeps.options(**on2).remote(str(marks / "never2"), 1)
    ready, _ = ray.wait([ref], timeout=3)
    print(f"task for the dead node2: {'ran' if ready else 'pending (waits for a node2)'}", flush=True)
    node_cmd("up", "node2")
    outcome("that task once node2 is back", ref)
    ray.shutdown()
    shutil.rmtree(marks, ignore_errors=True)


if __name__ == "__main__":
    main()
