"""``python -m blut_core.process.runner CONTEXT.json``: run one Python stage in this process.

Exit codes: 0 success; 1 the stage raised (an ``error`` event says what); 3 the failure
is deterministic and must not be retried.
"""

from __future__ import annotations

import json
import sys
import traceback
from collections.abc import Callable
from typing import Any

EXIT_DETERMINISTIC = 3


def main(argv: list[str]) -> int:
    from blut_core.process.context import StageContext

    with open(argv[0], encoding="utf-8") as fh:
        data = json.load(fh)
    ctx = StageContext(data)
    try:
        return _run(ctx, data)
    finally:
        ctx.close()  # a reused worker runs more stages: nothing of this one stays open


def run_stage(context_path: str) -> int:
    """Run the Python stage whose context file is ``context_path`` in this process.

    The entry every launcher's stage-side code uses (a fork-server worker, a cluster job's
    shim); returns the exit code (see the module docstring).
    """
    return main([context_path])


def _run(ctx: Any, data: dict[str, Any]) -> int:
    from blut_core.process.context import StageFailure

    try:
        fn = resolve_target(data["target"])
    except Exception as exc:
        ctx.emit("error", kind="deterministic", type=type(exc).__name__,
                 message=f"cannot import {data['target']}: {exc}")
        print(f"blut: cannot import {data['target']}: {exc}", file=sys.stderr)
        return EXIT_DETERMINISTIC
    try:
        fn(ctx)
    except StageFailure as exc:
        ctx.emit("error", kind="error" if exc.retry else "deterministic",
                 type="StageFailure", message=str(exc))
        print(f"blut: stage failed: {exc}", file=sys.stderr)
        return 1 if exc.retry else EXIT_DETERMINISTIC
    except BaseException as exc:
        if isinstance(exc, SystemExit) and exc.code in (0, None):
            return 0
        ctx.emit("error", kind="error", type=type(exc).__name__, message=str(exc))
        traceback.print_exc()
        return 1
    return 0


def resolve_target(target: str) -> Callable[..., Any]:
    """Import ``module:qualname`` and return the callable."""
    import importlib

    module_name, _, qualname = target.partition(":")
    obj: Any = importlib.import_module(module_name)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    if not callable(obj):
        raise TypeError(f"{target} is not callable")
    return obj  # type: ignore[no-any-return]


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
