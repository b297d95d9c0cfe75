"""Python-orchestrator floors (stdlib only; each mode imports only what it needs).

  python pyfloor.py fanout [N]    N x subprocess.run(["true"]) on a 2-thread pool
  python pyfloor.py chain  [N]    N x subprocess.run(["true"]) one after another
  python pyfloor.py pycall [N]    N no-op Python callables on a 2-thread pool
  python pyfloor.py touch  [N]    create fan/0.done .. fan/N-1.done (set-up for "uptodate")
  python pyfloor.py uptodate [N]  stat fan/0.done .. fan/N-1.done (fails if one is missing)
"""

from __future__ import annotations

import sys


def main() -> None:
    kind = sys.argv[1]
    n = int(sys.argv[2]) if len(sys.argv) > 2 else (50 if kind == "chain" else 200)
    if kind in ("fanout", "chain"):
        import subprocess

        def stage(i: int) -> int:
            subprocess.run(["true"], check=True)
            return i

        if kind == "chain":
            for i in range(n):
                stage(i)
        else:
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(2) as ex:
                assert len(list(ex.map(stage, range(n)))) == n
    elif kind == "pycall":
        from concurrent.futures import ThreadPoolExecutor

        def noop(i: int) -> int:
            return i

        with ThreadPoolExecutor(2) as ex:
            assert len(list(ex.map(noop, range(n)))) == n
    elif kind == "touch":
        import os

        os.makedirs("fan", exist_ok=True)
        for i in range(n):
            open(f"fan/{i}.done", "a").close()
    elif kind == "uptodate":
        import os

        max(os.stat(f"fan/{i}.done").st_mtime for i in range(n))
    else:
        raise SystemExit(f"unknown workload {kind}")


main()
