"""What blut commands import: a cookbook's tests check that listing, showing and checking its
recipes costs none of its heavy modules (numpy, say), which every blut command would pay for.

:func:`imports_of_commands` runs blut commands in-process, one after another, in a fresh
interpreter (so nothing the test process imported counts) and says how each ended and which
of the modules asked about were imported by then.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path

import attrs

from blut_core.model.reprs import record_repr

_SCRIPT = """
import json, sys
from blut_core.cli import main
codes = []
for argv in json.loads(sys.argv[1]):
    try:
        main(argv)
        codes.append(None)
    except SystemExit as exc:
        codes.append(exc.code if isinstance(exc.code, int) or exc.code is None else 1)
imported = sorted(m for m in json.loads(sys.argv[2]) if m in sys.modules)
with open(sys.argv[3], "w") as fh:
    json.dump({"codes": codes, "imported": imported}, fh)
"""


@attrs.frozen(kw_only=True)
class CommandImports:
    """How each command ended (its exit code; ``None`` where it returned, or exited, with none)
    and which of the modules asked about were imported once they had all run."""

    __repr__ = record_repr  # attrs' text, not compiled per class

    codes: list[int | None]
    imported: list[str]


def imports_of_commands(argvs: Sequence[Sequence[str]], modules: Iterable[str], *, home: Path,
                        timeout: float = 120) -> CommandImports:
    """Run each ``blut ARGV`` of ``argvs`` in turn in one new interpreter with ``BLUT_HOME`` at
    ``home``; which of ``modules`` (e.g. ``["numpy"]``) it had imported at the end.

    ``imports_of_commands([["recipes", "list"]], ["numpy"], home=tmp_path).imported == []``
    says that listing recipes imports no numpy. Raises AssertionError, with the interpreter's
    stderr, if it fails outside the commands.
    """
    env = {**os.environ, "BLUT_HOME": str(home), "BLUT_NO_STALE_CHECK": "1"}
    with tempfile.TemporaryDirectory() as tmp:
        result = Path(tmp, "result.json")
        r = subprocess.run([sys.executable, "-c", _SCRIPT, json.dumps([list(a) for a in argvs]),
                            json.dumps(list(modules)), str(result)],
                           capture_output=True, text=True, env=env, timeout=timeout)
        assert r.returncode == 0 and result.exists(), r.stderr
        data = json.loads(result.read_text())
    return CommandImports(codes=data["codes"], imported=data["imported"])
