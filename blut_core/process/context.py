"""What a stage sees: :class:`StageContext`. Kept free of heavy imports (stage start-up).

A stage process gets its context from the JSON file named by ``BLUT_CONTEXT``. Python
stages receive a :class:`StageContext`; command stages read the same facts from environment
variables (``BLUT_OUT_DIR``, ``BLUT_INPUT_<NAME>``, ``BLUT_PARAMS``, ``BLUT_EVENTS``) and
report by appending JSON lines to ``$BLUT_EVENTS``.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

CONTEXT_ENV = "BLUT_CONTEXT"


class StageFailure(Exception):
    """Raise (or call ``ctx.fail``) to fail a stage with a message.

    ``retry=False`` marks the failure deterministic (bad params, missing input, the stage's
    own validation): it is never retried.
    """

    def __init__(self, message: str, *, retry: bool = False) -> None:
        super().__init__(message)
        self.retry = retry


class StageContext:
    """The running stage's view of its run: params, inputs, output dir, reporting."""

    def __init__(self, data: dict[str, Any]) -> None:
        self.run_id: str = data["run_id"]
        self.stage: str = data["stage"]
        self.attempt: int = int(data["attempt"])
        self.params: dict[str, Any] = data.get("params", {})
        self.inputs: dict[str, Path] = {k: Path(v) for k, v in data.get("inputs", {}).items()}
        self.out_dir = Path(data["out_dir"])
        self.work_dir = Path(data["work_dir"])
        self.checkpoint_dir = Path(data["checkpoint_dir"])
        self.knobs: dict[str, int] = data.get("knobs", {})
        self._events = os.open(data["events"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    @classmethod
    def from_environ(cls) -> StageContext:
        """The context of the current stage process (``BLUT_CONTEXT``)."""
        path = os.environ.get(CONTEXT_ENV)
        if not path:
            raise RuntimeError("not inside a blut stage: BLUT_CONTEXT is not set")
        with open(path, encoding="utf-8") as fh:
            return cls(json.load(fh))

    def close(self) -> None:
        """Close the event stream (the runner does, when the stage returns)."""
        if self._events >= 0:
            os.close(self._events)
            self._events = -1

    def input(self, name: str) -> Path:
        """The promoted output directory of upstream stage ``name``."""
        try:
            return self.inputs[name]
        except KeyError:
            raise StageFailure(f"stage {self.stage!r} has no input {name!r}; "
                               f"it has: {', '.join(self.inputs) or 'none'}") from None

    def emit(self, event: str, **fields: Any) -> None:
        """Append one event line to the stage's event stream."""
        fields["event"] = event
        fields["t"] = time.time()
        os.write(self._events, (json.dumps(fields, default=str) + "\n").encode())

    def log(self, step: int | None = None, **metrics: Any) -> None:
        """Report metrics (``ctx.log(step=3, loss=0.2)``); a non-finite value may prune."""
        self.emit("metric", step=step, values=metrics)

    def heartbeat(self, **info: Any) -> None:
        """Say "still alive"; after the first heartbeat, silence triggers the watchdog."""
        self.emit("heartbeat", **info)

    def checkpoint(self, state: dict[str, Any]) -> None:
        """Save progress; a retried or resumed attempt gets it back from :meth:`restore`."""
        self.checkpoint_dir.mkdir(parents=True, exist_ok=True)
        tmp = self.checkpoint_dir / f".state.{os.getpid()}.tmp"
        tmp.write_text(json.dumps(state), encoding="utf-8")
        os.replace(tmp, self.checkpoint_dir / "state.json")
        self.emit("checkpoint")

    def restore(self) -> dict[str, Any] | None:
        """The last state saved by :meth:`checkpoint` in this stage, or ``None``."""
        path = self.checkpoint_dir / "state.json"
        try:
            data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return data

    def fail(self, message: str, *, retry: bool = False) -> None:
        """Fail the stage now; ``retry=False`` means never retry it."""
        raise StageFailure(message, retry=retry)
