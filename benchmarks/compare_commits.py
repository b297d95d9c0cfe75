"""This checkout against another commit, interleaved: ``blut --help``, ``--version``, a one-stage run.

``python benchmarks/compare_commits.py REF [--this REF2] [--rounds N]`` builds REF (and REF2,
else this checkout as it is) in a scratch worktree and virtualenv each (once; reused while a
ref resolves to the same commit), then runs each command N times for both builds,
alternating, so that a change of machine speed hits both alike, and prints medians and the
ratio this/REF. ``--help`` and ``--version`` see the quickstart cookbook only; the one-stage
run also sees the benchmark cookbook. Both sides get bytecode (each build compiles its
modules once), so neither pays for compiling in the timed runs.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCRATCH = Path(tempfile.gettempdir()) / "blut-compare"


def _build(ref: str) -> tuple[Path, Path]:
    """(python, source tree) of REF, built in a worktree and a venv of its own."""
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", ref], check=True,
                            capture_output=True, text=True).stdout.strip()
    tree, venv = SCRATCH / f"tree-{commit[:12]}", SCRATCH / f"venv-{commit[:12]}"
    python = venv / "bin" / "python"
    if not python.exists():
        SCRATCH.mkdir(exist_ok=True)
        if not tree.exists():
            subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "-f", "--detach", str(tree), commit],
                           check=True, capture_output=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", "-e", str(tree),
                        "-e", str(tree / "cookbooks" / "quickstart")], check=True)
    return python, tree


def _one_stage_site(tree: Path, tmp: Path) -> Path:
    """A site dir whose dist-info makes ``tree``'s benchmark cookbook an installed cookbook."""
    text = (tree / "benchmarks" / "cookbook.py").read_text()
    target = "benchmarks.cookbook:COOKBOOK" if "COOKBOOK = " in text else "benchmarks.cookbook"
    site = tmp / f"site-{tree.name}"
    dist = site / "blut_benchbook-0.0.dist-info"
    dist.mkdir(parents=True, exist_ok=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: blut-benchbook\nVersion: 0.0\n")
    (dist / "entry_points.txt").write_text(f"[blut.cookbooks]\nbenchbook = {target}\n")
    return site


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("ref")
    parser.add_argument("--this", help="a commit to measure instead of this checkout")
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args(argv)
    this = _build(args.this) if args.this else (Path(sys.executable), ROOT)
    builds = {"this": this, args.ref: _build(args.ref)}
    with tempfile.TemporaryDirectory() as tmp_text:
        tmp = Path(tmp_text)
        commands: dict[str, list[str]] = {"--help": ["--help"], "--version": ["--version"],
                                          "one-stage run": ["run", "benchbook:commands", "-p", "n=1",
                                                            "--no-cache", "--no-progress"]}
        envs, plain = {}, {}
        for name, (python, tree) in builds.items():
            subprocess.run([str(python), "-m", "compileall", "-q", str(tree / "blut_core"),
                            str(tree / "blut_plugins"), str(tree / "benchmarks")], check=True)
            envs[name] = {**os.environ, "BLUT_NO_STALE_CHECK": "1", "BLUT_HOME": str(tmp / f"home-{name}"),
                          "PYTHONPATH": os.pathsep.join([str(_one_stage_site(tree, tmp)), str(tree)])}
            envs[name].pop("PYTHONDONTWRITEBYTECODE", None)
            plain[name] = {k: v for k, v in envs[name].items() if k != "PYTHONPATH"}
        samples: dict[tuple[str, str], list[float]] = {}
        cpu: dict[tuple[str, str], list[float]] = {}
        for _ in range(args.rounds + 1):  # the first round warms caches and is dropped
            for label, cmd in commands.items():
                for name, (python, tree) in builds.items():
                    exe = [str(python.with_name("blut"))]
                    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
                    t = time.perf_counter()
                    env = envs[name] if cmd[0] == "run" else plain[name]
                    subprocess.run([*exe, *cmd], env=env, cwd=tree, check=True,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                    samples.setdefault((label, name), []).append(time.perf_counter() - t)
                    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
                    cpu.setdefault((label, name), []).append(
                        r1.ru_utime - r0.ru_utime + r1.ru_stime - r0.ru_stime)
        print(f"medians of {args.rounds} interleaved whole-process runs (ms); ratio = this / {args.ref}; "
              "CPU is the process's user + system time (its children's included), less moved by load")
        for label in commands:
            for what, table in (("wall", samples), ("cpu", cpu)):
                this_ = statistics.median(table[(label, "this")][1:]) * 1000
                other = statistics.median(table[(label, args.ref)][1:]) * 1000
                print(f"  {label:<14} {what:<4} this {this_:7.1f}   {args.ref[:12]:<12} {other:7.1f}   "
                      f"{this_ / other:.3f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
