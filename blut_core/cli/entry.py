"""``blut``'s console-script entry point: what every command pays before click is imported.

``blut --version`` (and ``-V``) is answered here, before click, pluggy or any plugin is
imported, and the stale-install warning is given here for every command; everything else
goes to :func:`blut_core.cli.root.run`, which builds the App and dispatches.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

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

    run(args, app)
