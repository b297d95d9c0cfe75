"""Telling a finished Ray task's exception apart: memory monitor, lost, cancelled, error.

Three layers: stand-ins named like Ray's classes (no Ray needed), Ray's own exception
classes, and a real local Ray instance that provokes an error, a worker crash and a cancel
(both need Ray importable and skip otherwise). The memory monitor's kill and a dead node
need a cluster: ``verify_ray_behaviour.py`` provokes them on the tools/cluster one.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import textwrap

import pytest

pytest.importorskip("blut_launcher_ray", reason="not installed: pip install -e packages/blut-launcher-ray")

from blut_launcher_ray.classify import Kind, Verdict, classify_task_error

NO_RAY = "ray is not importable here (pip install ray); the stand-in classes cover the names"


def ray_like(name: str, *bases: type[BaseException]) -> type[BaseException]:
    """A class named and placed like ray.exceptions.<name>."""
    cls = type(name, bases or (Exception,), {})
    cls.__module__ = "ray.exceptions"
    return cls


RayError = ray_like("RayError")
RayActorError = ray_like("RayActorError", RayError)


@pytest.mark.parametrize(("cls", "kind"), [
    (ray_like("OutOfMemoryError", RayError), Kind.MEMORY_MONITOR),
    (ray_like("NodeDiedError", RayError), Kind.LOST),
    (ray_like("WorkerCrashedError", RayError), Kind.LOST),
    (ray_like("ActorDiedError", RayActorError), Kind.LOST),
    (ray_like("SomeFutureActorError", RayActorError), Kind.LOST),  # a new subclass of a lost base
    (ray_like("OwnerDiedError", ray_like("ObjectLostError", RayError)), Kind.LOST),
    (ray_like("TaskCancelledError", RayError), Kind.CANCELLED),
    (ray_like("RuntimeEnvSetupError", RayError), Kind.ERROR),
    (ray_like("SomethingNewError", RayError), Kind.ERROR),
    (ValueError, Kind.ERROR),
])
def test_by_class_name_without_ray(cls: type[BaseException], kind: Kind) -> None:
    verdict = classify_task_error(cls("what \x1b[36mhappened\x1b[39m\nmore lines"))
    assert verdict.kind is kind
    assert verdict.exception_type == cls.__name__
    assert "\n" not in verdict.reason and "\x1b" not in verdict.reason and "happened" in verdict.reason


def test_a_class_named_like_ray_but_not_rays_is_an_error() -> None:
    impostor = type("NodeDiedError", (Exception,), {})
    assert classify_task_error(impostor("x")).kind is Kind.ERROR


def test_not_finished_is_not_classified() -> None:
    with pytest.raises(ValueError, match="has not finished"):
        classify_task_error(ray_like("GetTimeoutError", RayError, TimeoutError)())


def test_empty_messages_get_a_reason() -> None:
    assert classify_task_error(ray_like("TaskCancelledError", RayError)()).reason == "cancelled"
    assert classify_task_error(ray_like("NodeDiedError", RayError)("")).reason == "NodeDiedError"


@pytest.fixture(scope="module")
def rex() -> object:
    return pytest.importorskip("ray.exceptions", reason=NO_RAY)


def test_rays_own_exception_classes(rex: object) -> None:
    e = rex
    task_error = e.RayTaskError("stage", "Traceback ...\nValueError: boom", ValueError("boom"),  # type: ignore[attr-defined]
                                proctitle="ray::stage", pid=1, ip="127.0.0.1").as_instanceof_cause()
    assert isinstance(task_error, ValueError)
    cases: list[tuple[BaseException, Kind]] = [
        (task_error, Kind.ERROR),
        (e.OutOfMemoryError("1 worker(s) were killed due to the node running low on memory."),  # type: ignore[attr-defined]
         Kind.MEMORY_MONITOR),
        (e.NodeDiedError("Task failed because the node it was running on is dead"), Kind.LOST),  # type: ignore[attr-defined]
        (e.WorkerCrashedError(), Kind.LOST),  # type: ignore[attr-defined]
        (e.ActorDiedError(), Kind.LOST),  # type: ignore[attr-defined]
        (e.OwnerDiedError("ab" * 14, None, "call site"), Kind.LOST),  # type: ignore[attr-defined]
        (e.LocalRayletDiedError(), Kind.LOST),  # type: ignore[attr-defined]
        (e.TaskUnschedulableError("its node is gone"), Kind.LOST),  # type: ignore[attr-defined]
        (e.TaskCancelledError(), Kind.CANCELLED),  # type: ignore[attr-defined]
        (e.RuntimeEnvSetupError("pip failed"), Kind.ERROR),  # type: ignore[attr-defined]
    ]
    for exc, kind in cases:
        verdict = classify_task_error(exc)
        assert verdict.kind is kind, (type(exc).__name__, verdict)
    expected = Verdict(Kind.ERROR, "RayTaskError(ValueError)", "ValueError: boom")
    assert classify_task_error(task_error) == expected
    cancelled = e.RayTaskError("stage", "KeyboardInterrupt", e.TaskCancelledError(),  # type: ignore[attr-defined]
                               proctitle="ray::stage", pid=1, ip="127.0.0.1").as_instanceof_cause()
    assert classify_task_error(cancelled).kind is Kind.CANCELLED
    with pytest.raises(ValueError, match="has not finished"):
        classify_task_error(e.GetTimeoutError())  # type: ignore[attr-defined]


PROVOKE = textwrap.dedent("""
    import json, os, sys, time
    import ray
    from blut_launcher_ray.classify import classify_task_error

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, _temp_dir=sys.argv[1])

    @ray.remote(max_retries=0)
    def fails():
        raise KeyError("missing")

    @ray.remote(max_retries=0)
    def crashes():
        os._exit(7)

    @ray.remote(max_retries=0)
    def sleeps(marker):
        open(marker, "w").close()
        for _ in range(1200):  # short sleeps: a cancel interrupts Python between them
            time.sleep(0.05)

    out = {}
    for label, ref in (("error", fails.remote()), ("crash", crashes.remote())):
        try:
            ray.get(ref, timeout=60)
        except Exception as exc:
            out[label] = [classify_task_error(exc).kind.value, type(exc).__name__]
    marker = os.path.join(sys.argv[1], "running")
    ref = sleeps.remote(marker)
    while not os.path.exists(marker):
        time.sleep(0.05)
    ray.cancel(ref)
    try:
        ray.get(ref, timeout=60)
    except Exception as exc:
        out["cancel"] = [classify_task_error(exc).kind.value, type(exc).__name__]
    ray.shutdown()
    print(json.dumps(out))
""")


def kill_session(sid: int) -> None:
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == sid:  # field 6 of stat: the session id
            with contextlib.suppress(OSError):
                os.kill(int(entry), signal.SIGKILL)


@pytest.mark.slow
def test_a_real_local_ray(rex: object) -> None:
    with tempfile.TemporaryDirectory(prefix="blut-ray-", dir="/tmp") as tmp:  # short: unix sockets
        env = {**os.environ, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",  # stay on 127.0.0.1
               "RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "token",
               "RAY_AUTH_TOKEN": secrets.token_hex(16)}  # nothing written to ~/.ray
        env.pop("RAY_ADDRESS", None)
        proc = subprocess.Popen([sys.executable, "-c", PROVOKE, tmp], env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, start_new_session=True)
        try:
            stdout, stderr = proc.communicate(timeout=240)
        finally:
            proc.kill()
            kill_session(proc.pid)  # whatever Ray left behind in the driver's session
    assert proc.returncode == 0, stderr[-3000:]
    seen = json.loads(stdout.strip().splitlines()[-1])
    assert seen == {
        "error": ["error", "RayTaskError(KeyError)"],
        "crash": ["lost", "WorkerCrashedError"],
        "cancel": ["cancelled", seen["cancel"][1]],
    }
    assert seen["cancel"][1] in ("TaskCancelledError", "RayTaskError(TaskCancelledError)")
