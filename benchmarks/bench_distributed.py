"""Distributed launchers: per-stage overhead of 50 no-op stages on Slurm and on Ray, each
against the same scheduler used plainly, measured in the same command.

Run standalone: ``python benchmarks/bench_distributed.py [--json]``, with the clusters'
environments set (``. STATE/env.sh`` of ``tools/cluster/slurm-up.sh`` and ``ray-up.sh``);
a launcher whose cluster or package is missing is skipped, saying so.

- Slurm: ``blut run benchbook:commands -p n=50 --launcher slurm -j 50`` (the whole process,
  start-up and set-up included) against 50 ``sbatch --wrap true`` jobs submitted one after
  another and waited for with squeue (``packages/blut-launcher-slurm/bench_baseline.sh``);
- Ray: the same run with ``--launcher ray`` against 50 plain Ray tasks in a fresh driver
  process (start-up, ``import ray`` and ``ray.init`` included, as in blut's whole process;
  ``packages/blut-launcher-ray/bench_baseline.py`` splits these apart), the two alternating
  run by run, so that a change of machine load hits both alike. Also reported: the median
  time a stage spent inside its task (the shim: its cgroup, start, wait, exit record), from
  the exit records of blut's last run.

Per-stage figure: the wall time over 50. Target: blut at most 1.5x plain on each.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks._util import ROOT, blut_exe

N = 50
REPEAT = 3
#: plain/blut pairs on Ray: its whole-process times swing by 2x on a shared machine
RAY_REPEAT = 5


def _env(tmp: Path) -> dict[str, str]:
    from blut_core.testing import installed_distribution

    site = installed_distribution(tmp / "site", "blut-benchbook", "0.0",
                                  {"blut.cookbooks": {"benchbook": "benchmarks.cookbook"}})
    return {**os.environ, "BLUT_HOME": str(tmp / "home"), "BLUT_NO_STALE_CHECK": "1",
            "PYTHONPATH": os.pathsep.join([str(site), str(ROOT)])}


def _blut_run(tmp: Path, launcher: str, tag: str) -> float:
    argv = [*blut_exe(), "run", "benchbook:commands", "-p", f"n={N}", "-p", f"tag={tag}",
            "--launcher", launcher, "-j", str(N), "--no-progress", "--no-cache"]
    t = time.perf_counter()
    r = subprocess.run(argv, env=_env(tmp), capture_output=True, text=True)
    wall = time.perf_counter() - t
    if r.returncode != 0:
        raise RuntimeError(f"blut run --launcher {launcher} failed: {r.stderr[-1500:]}")
    return wall


def _why_not(launcher: str) -> str | None:
    module = {"slurm": "blut_launcher_slurm", "ray": "blut_launcher_ray"}[launcher]
    if importlib.util.find_spec(module) is None:
        return f"{module} is not installed"
    if launcher == "slurm" and not os.environ.get("SLURM_CONF"):
        return "SLURM_CONF is not set (tools/cluster/slurm-up.sh, then . STATE/env.sh)"
    if launcher == "ray" and not os.environ.get("RAY_ADDRESS"):
        return "RAY_ADDRESS is not set (tools/cluster/ray-up.sh, then . STATE/env.sh)"
    return None


def slurm(tmp: Path) -> dict[str, float]:
    script = ROOT / "packages" / "blut-launcher-slurm" / "bench_baseline.sh"
    out = subprocess.run(["bash", str(script), str(N), str(REPEAT)], capture_output=True, text=True,
                         check=True).stdout
    plain = float(re.search(r"median of \d+: ([0-9.]+)s", out).group(1))  # type: ignore[union-attr]
    blut = statistics.median(_blut_run(tmp, "slurm", f"s{i}-{time.time_ns()}") for i in range(REPEAT))
    return {"plain_s": plain, "blut_s": blut}


#: 50 plain Ray tasks from a fresh driver: the whole process is timed, as blut's is
PLAIN_RAY = """
import sys
import ray

ray.init(log_to_driver=False)

@ray.remote(num_cpus=1, max_retries=0)
def nothing():
    return None

ray.get([nothing.remote() for _ in range(int(sys.argv[1]))])
ray.shutdown()
"""


def _plain_ray() -> float:
    t = time.perf_counter()
    subprocess.run([sys.executable, "-c", PLAIN_RAY, str(N)], check=True, capture_output=True)
    return time.perf_counter() - t


def _in_task_ms(home: Path) -> float | None:
    """The median time a stage of the newest run spent in its task, from its exit records."""
    runs = sorted((home / "runs").glob("*/status.jsonl"), key=lambda p: p.stat().st_mtime)
    spans = []
    for record in runs[-1].parent.glob("stages/*/attempts/*/exit.json") if runs else ():
        data = json.loads(record.read_text())
        spans.append(1000 * (data["ended_at"] - data["started_at"]))
    return statistics.median(spans) if spans else None


def ray(tmp: Path) -> dict[str, float]:
    plain, blut = [], []
    for i in range(RAY_REPEAT):  # alternating, so that load from elsewhere hits both alike
        plain.append(_plain_ray())
        blut.append(_blut_run(tmp, "ray", f"r{i}-{time.time_ns()}"))
    out = {"plain_s": statistics.median(plain), "blut_s": statistics.median(blut)}
    in_task = _in_task_ms(tmp / "home")
    if in_task is not None:
        out["in_task_ms"] = in_task
    return out


def main() -> None:
    results: dict[str, dict[str, float] | str] = {}
    with tempfile.TemporaryDirectory(prefix="blut-bench-dist-") as tmp:
        for name, fn in (("slurm", slurm), ("ray", ray)):
            why = _why_not(name)
            if why is not None:
                results[name] = f"skipped: {why}"
                continue
            r = fn(Path(tmp))
            r["per_stage_plain_ms"] = 1000 * r["plain_s"] / N
            r["per_stage_blut_ms"] = 1000 * r["blut_s"] / N
            r["ratio"] = r["blut_s"] / r["plain_s"]
            results[name] = r
    if "--json" in sys.argv:
        print(json.dumps(results, indent=2))
        return
    print(f"{N} no-op stages, median of {REPEAT} (Ray: of {RAY_REPEAT} alternating pairs), whole process; "
          "target ratio <= 1.5")
    for name, row in results.items():
        if isinstance(row, str):
            print(f"  {name:6} {row}")
        else:
            in_task = f"  (in its task {row['in_task_ms']:.1f} ms)" if "in_task_ms" in row else ""
            print(f"  {name:6} plain {row['plain_s']:.2f}s ({row['per_stage_plain_ms']:.0f} ms/stage)  "
                  f"blut {row['blut_s']:.2f}s ({row['per_stage_blut_ms']:.0f} ms/stage)  "
                  f"ratio {row['ratio']:.2f}{in_task}")


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    main()
