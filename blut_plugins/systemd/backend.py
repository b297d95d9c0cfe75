"""Implementation behind the ``containment-systemd`` plugin (imported only when used).

The ``systemd`` containment: each stage in a transient scope with ``MemoryMax``.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import shutil
import signal
import subprocess
from collections.abc import Callable, Sequence

from blut_core import Cage, Containment

_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")


def _scope_args() -> list[str]:
    return [] if os.geteuid() == 0 else ["--user"]


@functools.cache
def _reason() -> str | None:
    exe = shutil.which("systemd-run")
    if exe is None:
        return "systemd-run is not installed"
    if not os.path.isdir("/run/systemd/system"):
        return "PID 1 is not systemd (no /run/systemd/system), so systemd-run cannot start scopes"
    try:
        done = subprocess.run([exe, *_scope_args(), "--scope", "--quiet", "-p", "MemoryMax=64M",
                               "true"], capture_output=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"systemd-run --scope failed: {exc}"
    if done.returncode != 0:
        first = (done.stderr.decode(errors="replace").strip().splitlines() or ["?"])[0]
        return f"systemd-run --scope failed (exit {done.returncode}): {first}"
    return None


class SystemdCage(Cage):
    """One transient scope."""

    def __init__(self, label: str, cap_bytes: int | None) -> None:
        self.unit = f"blut-{_UNSAFE.sub('_', label)[:80]}-{os.urandom(3).hex()}"
        self.cap = cap_bytes
        self._pid: int | None = None

    def wrap(self, argv: Sequence[str]) -> tuple[list[str], Callable[[], None] | None]:
        """``systemd-run --scope`` around ``argv``."""
        props = [] if self.cap is None else ["-p", f"MemoryMax={self.cap}", "-p", "MemorySwapMax=0"]
        return ["systemd-run", *_scope_args(), "--scope", "--quiet", f"--unit={self.unit}",
                *props, "--", *argv], None

    def attach(self, pid: int) -> None:
        """Remember the scope's main pid."""
        self._pid = pid

    def _show(self, prop: str) -> str:
        with contextlib.suppress(OSError, subprocess.TimeoutExpired):
            done = subprocess.run(["systemctl", *_scope_args(), "show", "-p", prop, "--value",
                                   f"{self.unit}.scope"], capture_output=True, timeout=5, check=False)
            return done.stdout.decode(errors="replace").strip()
        return ""

    def peak_bytes(self) -> int | None:
        """``MemoryPeak`` of the scope, when systemd still knows it."""
        value = self._show("MemoryPeak")
        return int(value) if value.isdigit() else None

    def oom_killed(self) -> bool:
        """Whether the scope ended with ``Result=oom-kill``."""
        return self._show("Result") == "oom-kill"

    def kill(self) -> None:
        """SIGKILL everything in the scope."""
        with contextlib.suppress(OSError, subprocess.TimeoutExpired):
            subprocess.run(["systemctl", *_scope_args(), "kill", "--signal=SIGKILL",
                            f"{self.unit}.scope"], capture_output=True, timeout=5, check=False)
        if self._pid is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self._pid, signal.SIGKILL)

    def release(self) -> None:
        """Forget a failed scope (``reset-failed``)."""
        with contextlib.suppress(OSError, subprocess.TimeoutExpired):
            subprocess.run(["systemctl", *_scope_args(), "reset-failed", f"{self.unit}.scope"],
                           capture_output=True, timeout=5, check=False)


class Systemd(Containment):
    """Caps each stage in a systemd scope."""

    name = "systemd"

    def unusable_reason(self) -> str | None:
        """Probed once per process by starting a tiny scope."""
        return _reason()

    def cage(self, label: str, cap_bytes: int | None) -> Cage:
        """A scope for one attempt."""
        return SystemdCage(label, cap_bytes)
