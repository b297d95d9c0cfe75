"""``blut``'s console-script entry point: what every command pays before click is imported.

``blut --version`` (and ``-V``) is answered here, before click, pluggy or any plugin is
imported, and the stale-install warning is given here for every command; everything else
goes to :func:`blut_core.cli.root.run`, which builds the App and dispatches.

A command's process ends without the interpreter's teardown when nothing needs it
(:func:`_leave`): tearing down the modules a run imported costs 30-50 ms, a tenth of a
one-stage run, and only frees memory the process is about to give back anyway.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, NoReturn

if TYPE_CHECKING:
    from blut_core.host.app import App


def main(argv: Sequence[str] | None = None, app: App | None = None) -> None:
    """Console-script entry point: ``blut = "blut_core.cli:main"``."""
    args = list(sys.argv[1:] if argv is None else argv)
    if os.environ.get("BLUT_NO_STALE_CHECK") != "1":
        from blut_core.host.installinfo import stale_warning

        try:
            warning = stale_warning()
        except OSError:  # the check never stops a command
            warning = None
        if warning:
            print(f"blut: {warning}", file=sys.stderr, flush=True)
    if args in (["--version"], ["-V"]):  # answered before click or any plugin is imported
        from blut_core.host.installinfo import describe_version

        print(f"blut {describe_version()}", flush=True)
        raise SystemExit(0)
    from blut_core.cli.root import run

    if argv is not None or app is not None:  # in-process (tests, embedding): a plain SystemExit
        run(args, app)
        return
    import gc

    gc.disable()  # until the App is built: see root.run
    try:
        run(args, app, gc_paused=True)
    except SystemExit as exc:
        _leave(exc)


def _leave(exc: SystemExit) -> NoReturn:
    """End this process with ``exc``'s code, skipping the interpreter's teardown when that is
    safe: its exit functions still run (``atexit``, ``weakref.finalize``), stdout and stderr
    are flushed, and the teardown is skipped only when no non-daemon thread is still running,
    no database engine (DuckDB) is loaded and no profiler or tracer (``cProfile``,
    ``coverage``) waits to write its results after ``main`` returns. Otherwise it exits as
    Python does."""
    import threading

    code = exc.code
    if code is None:
        code = 0
    others = [t for t in threading.enumerate() if t is not threading.main_thread()]
    if not isinstance(code, int) or any(not t.daemon for t in others) or "duckdb" in sys.modules \
            or sys.getprofile() is not None or sys.gettrace() is not None:
        raise exc
    import atexit

    try:
        sys.stdout.flush()
        sys.stderr.flush()
        atexit._run_exitfuncs()
        sys.stdout.flush()
        sys.stderr.flush()
    except (OSError, ValueError):  # e.g. stdout is a closed pipe: Python's own exit says so
        raise exc from None
    os._exit(code)
