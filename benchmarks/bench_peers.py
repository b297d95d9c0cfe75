"""blut against its peers, doit and dask (threads), on the same workloads in the same command.

Workloads (benchmarks/peers/ holds each peer's form of them; the scratch venvs are pinned by
benchmarks/peers/requirements/ and made under /tmp/blut-bench-venvs on first use):

- W1  200 independent `true` stages, 2-way parallel, cold (output folder emptied before a run);
- W1S the same with 20 stages: the slope W1S→W1 is the marginal cost of one stage;
- W2  a chain of 50 `true` stages, cold;
- W3  start-up: ``doit --version``, ``python -c 'import dask, dask.delayed'``, ``blut --version``;
- W3H ``blut --version`` and ``python -c pass`` on this machine's own interpreter (what blut
      pays more there: its site-packages' editable installs and .pth files), for reference;
- W4  W1 again with every output up to date (blut: every stage a cache hit; dask has none);
- W5  200 no-op Python callables, 2-way parallel, cold (W5S: 20, for blut's Python-stage slope);
- a one-stage ``blut run``.

Method: whole-process wall of each command, in interleaved rounds (every round runs each
command once, in a shuffled order), median and min-max; CPU is user+sys from os.wait4 (the
command and every descendant it waited for). The floors run in the same rounds. The machine's
load is reported: load averages before and after, and the share of CPU that other processes
used meanwhile. blut is installed like the peers: a scratch venv pinned by
requirements/blut.txt (no system site-packages) runs it, and this checkout is built as a wheel
into the run's work folder, with the bytecode pip writes; the benchmark cookbook is a copy there
too. If that venv or that build fails, blut runs the old way (this machine's interpreter and
its editable install, with a PYTHONPYCACHEPREFIX in the work folder), and a line says so.
Every command gets one untimed warm-up run. After the rounds, one more blut W1 run
is watched (its driver's VmHWM, its stage cgroups, the ledger) and what it left behind is
checked against what the issue demands.

Env: BLUT_BENCH_ROUNDS (default 7; W3 gets 3×), BLUT_BENCH_JSON (write the figures there),
BLUT_BENCH_SEED (the shuffle's seed), BLUT_BENCH_BUDGET (seconds the rounds may take, default 420:
no round starts that would pass it, so that a loaded machine still ends in ~10 minutes).
"""

from __future__ import annotations

import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from benchmarks._util import ROOT
from benchmarks.peers import venvs
from benchmarks.peers.checks import check_rerun, check_w1
from benchmarks.peers.measure import Cmd, Load, empty, file_system, run_once, take_out_trash, timed, watched

PEERS = Path(__file__).resolve().parent / "peers"
N, SMALL, CHAIN = 200, 20, 50
#: which command is a workload's floor in the table (the others are in the details)
TABLE_FLOOR = {"W1": "floor", "W1S": "floor", "W2": "floor", "W3": "floor", "W3H": "floor",
               "W4": "pyfloor", "W5": "pyfloor", "W5S": "pyfloor"}
TITLES = {"W1": f"W1 fan-out {N}", "W1S": f"W1S fan-out {SMALL}", "W2": f"W2 chain {CHAIN}",
          "W3": "W3 start-up", "W3H": "W3H start-up, machine's python", "W4": f"W4 re-run {N}",
          "W5": f"W5 Python {N}", "W5S": f"W5S Python {SMALL}"}
WORKLOADS = ("W1", "W1S", "W2", "W3", "W3H", "W4", "W5", "W5S")
MIB = 1024


def commands(work: Path, rounds: int, bins: dict[str, Path], blut_run: venvs.Blut) -> list[Cmd]:
    out: list[Cmd] = []
    penv, benv = venvs.peer_env(), blut_run.env

    def add(wl: str, peer: str, argv: list[str], n: int = 0, env: dict[str, str] | None = None,
            **kw: object) -> None:
        folder = work / "w" / f"{wl}-{peer}"
        e = dict(env if env is not None else penv)
        if peer == "blut":
            e.update(BLUT_HOME=str(folder / "home"), BLUT_LEDGER=str(folder / "ledger.json"))
        elif n:
            e["PB_N"] = str(n)
        cmd = Cmd(wl=wl, peer=peer, argv=argv, workdir=folder, env=e, n=n, rounds=rounds)
        for k, v in kw.items():
            setattr(cmd, k, v)
        out.append(cmd)

    fl = bins.get("floor")
    pyfloor = str(PEERS / "pyfloor.py")
    blut = [*blut_run.argv]
    for wl, n in (("W1", N), ("W1S", SMALL)):
        add(wl, "floor", ["bash", "-c", f"seq {n} | xargs -P2 -n1 /bin/true"], n)
        if fl:
            add(wl, "pyfloor", [str(fl / "python"), pyfloor, "fanout", str(n)], n)
    add("W2", "floor", ["bash", "-c", f"for ((i=0;i<{CHAIN};i++)); do /bin/true; done"], CHAIN)
    if fl:
        add("W2", "pyfloor", [str(fl / "python"), pyfloor, "chain", str(CHAIN)], CHAIN)
        add("W3", "floor", [str(fl / "python"), "-c", "pass"], cold=False, rounds=3 * rounds)
        add("W4", "pyfloor", [str(fl / "python"), pyfloor, "uptodate", str(N)], N, cold=False,
            setup=[str(fl / "python"), pyfloor, "touch", str(N)])
        for wl, n in (("W5", N), ("W5S", SMALL)):
            add(wl, "pyfloor", [str(fl / "python"), pyfloor, "pycall", str(n)], n)
    if "doit" in bins:
        doit = str(bins["doit"] / "doit")

        def dodo(name: str) -> list[str]:
            return [doit, "-f", str(PEERS / f"dodo_{name}.py"), "-d", ".", "-n", "2"]

        add("W1", "doit", dodo("fanout"), N)
        add("W1S", "doit", dodo("fanout"), SMALL)
        add("W2", "doit", dodo("chain"), CHAIN)
        add("W3", "doit", [doit, "--version"], cold=False, rounds=3 * rounds)
        add("W4", "doit", dodo("fanout"), N, cold=False, setup=dodo("fanout"))
        add("W5", "doit", dodo("pycall"), N)
        add("W5S", "doit", dodo("pycall"), SMALL)
    if "dask" in bins:
        dp, wf = str(bins["dask"] / "python"), str(PEERS / "daskwf.py")
        for wl, kind, n in (("W1", "fanout", N), ("W1S", "fanout", SMALL), ("W2", "chain", CHAIN),
                            ("W5", "pycall", N), ("W5S", "pycall", SMALL)):
            add(wl, "dask", [dp, wf, kind, str(n)], n)
        add("W3", "dask", [dp, "-c", "import dask, dask.delayed"], cold=False, rounds=3 * rounds)

    def run(recipe: str, n: int) -> list[str]:
        return [*blut, "run", f"pbbench:{recipe}", "-p", f"n={n}", "--jobs", "2", "--no-progress"]

    add("W1", "blut", run("fanout", N), N, benv)
    add("W1S", "blut", run("fanout", SMALL), SMALL, benv)
    add("W2", "blut", run("chain", CHAIN), CHAIN, benv)
    add("W3", "blut", [*blut, "--version"], env=benv, cold=False, rounds=3 * rounds)
    if blut_run.venv is not None:  # the same on this machine's interpreter, for reference
        add("W3H", "floor", [sys.executable, "-c", "pass"], cold=False, rounds=3 * rounds)
        host = venvs.host_blut(work)
        add("W3H", "blut", [*host.argv, "--version"], env=host.env, cold=False, rounds=3 * rounds)
    add("W4", "blut", run("fanout", N), N, benv, cold=False, setup=run("fanout", N))
    add("W5", "blut", run("pycall", N), N, benv)
    add("W5S", "blut", run("pycall", SMALL), SMALL, benv)
    add("ONE", "blut", run("fanout", 1), 1, benv)
    return out


def measure(cmds: list[Cmd], logs: Path, seed: int) -> dict[str, Any]:
    """Set-ups and one untimed warm-up run of each command, then the interleaved rounds."""
    for c in cmds:
        empty(c.workdir)
        if c.setup:
            code, _ = timed(c.setup, c.workdir, c.env, logs / f"{c.wl}-{c.peer}.setup.stderr")
            if code != 0:
                c.failed = f"its set-up exited {code} (see {logs})"
                continue
        run_once(c, logs)  # warm-up: page cache, and blut's bytecode
    rng = random.Random(seed)
    load = Load()
    budget = float(os.environ.get("BLUT_BENCH_BUDGET", "420"))
    done, stopped, total = 0, "", max(c.rounds for c in cmds)
    for r in range(total):
        todo = [c for c in cmds if c.rounds > r and not c.failed]
        # the next round's likely length: its commands' median walls so far
        ahead = 1.2 * sum(c.median() or 0.0 for c in todo)  # + emptying the folders
        if r and time.monotonic() - load.t0 + ahead > budget:
            short = sorted({c.wl for c in todo})
            stopped = (f"stopped after round {done} of {total}: round {r + 1} would pass the "
                       f"{budget:.0f} s budget (BLUT_BENCH_BUDGET); {', '.join(short)} got fewer "
                       "rounds than asked")
            print(f"bench_peers: {stopped}", file=sys.stderr, flush=True)
            break
        rng.shuffle(todo)
        print(f"bench_peers: round {r + 1}: {len(todo)} commands", file=sys.stderr, flush=True)
        for c in todo:
            sample = run_once(c, logs)
            if sample is not None:
                c.samples.append(sample)
        done = r + 1
    return {**load.finish(), "rounds_done": done, "stopped": stopped}


def _get(cmds: list[Cmd], wl: str, peer: str) -> Cmd | None:
    return next((c for c in cmds if c.wl == wl and c.peer == peer), None)


def _med(cmds: list[Cmd], wl: str, peer: str) -> float | None:
    c = _get(cmds, wl, peer)
    return c.median() if c else None


def _slope(cmds: list[Cmd], wl: str, small: str, peer: str) -> float | None:
    """ms per stage between the N=20 and N=200 medians."""
    big, little = _med(cmds, wl, peer), _med(cmds, small, peer)
    return None if big is None or little is None else (big - little) / (N - SMALL) * 1000


def _s(x: float | None) -> str:
    return "-" if x is None else f"{x:.3f} s"


def _ms(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f} ms"


def _ratio(a: float | None, b: float | None, least: float = 0.0) -> str:
    """a / b; "-" when b is missing or not above ``least`` (a slope within the noise)."""
    return "-" if a is None or b is None or b <= least else f"{a / b:.2f}"


def _mark(ok: bool | None, what: str) -> str:
    return "-" if ok is None else f"{what}: {'met' if ok else 'NOT met'}"


def table(cmds: list[Cmd], rss_kib: int | None) -> list[list[str]]:
    rows = [["workload", "floor", "doit", "dask", "blut", "blut÷doit", "blut÷dask", "target"]]
    for wl in WORKLOADS:
        if not _get(cmds, wl, "blut"):
            continue
        floor = _med(cmds, wl, TABLE_FLOOR[wl])
        d, k, b = _med(cmds, wl, "doit"), _med(cmds, wl, "dask"), _med(cmds, wl, "blut")
        ok = None if wl.endswith(("S", "H")) or b is None or d is None else b <= d
        rows.append([TITLES[wl], _s(floor), _s(d), _s(k), _s(b), _ratio(b, d), _ratio(b, k),
                     _mark(ok, "≤ doit")])
    for wl, small, title in (("W1", "W1S", "marginal / command stage"),
                             ("W5", "W5S", "marginal / Python stage")):
        f, d, k, b = (_slope(cmds, wl, small, p) for p in (TABLE_FLOOR[wl], "doit", "dask", "blut"))
        rows.append([f"{title} ({SMALL}→{N})", _ms(f), _ms(d), _ms(k), _ms(b), _ratio(b, d, 0.1),
                     _ratio(b, k, 0.1), _mark(None if b is None else b <= 1.5, "≤ 1.5 ms/stage")])
    one = _med(cmds, "ONE", "blut")
    rows.append(["one-stage blut run", "-", "-", "-", _s(one), "-", "-",
                 _mark(None if one is None else one <= 0.25, "≤ 0.25 s")])
    d_rss, k_rss = (_get(cmds, "W1", p) for p in ("doit", "dask"))

    def mib(c: Cmd | None) -> str:
        m = c.summary()["maxrss_median_kib"] if c else None
        return "-" if not isinstance(m, (int, float)) else f"{m / MIB:.0f} MiB*"

    rows.append(["W1 driver peak RSS (VmHWM)", "-", mib(d_rss), mib(k_rss),
                 "-" if rss_kib is None else f"{rss_kib / MIB:.1f} MiB", "-", "-",
                 _mark(None if rss_kib is None else rss_kib <= 40 * MIB, "≤ 40 MiB")])
    return rows


def cpu_table(cmds: list[Cmd]) -> list[list[str]]:
    """Median CPU (user+sys) per workload: less swayed by other processes than the walls."""

    def cpu(wl: str, peer: str) -> float | None:
        c = _get(cmds, wl, peer)
        return statistics.median(x.cpu for x in c.samples) if c and c.samples else None

    rows = [["workload", "floor", "doit", "dask", "blut", "blut÷doit", "blut÷dask"]]
    for wl in WORKLOADS:
        if not _get(cmds, wl, "blut"):
            continue
        f, d, k, b = (cpu(wl, p) for p in (TABLE_FLOOR[wl], "doit", "dask", "blut"))
        rows.append([TITLES[wl], _s(f), _s(d), _s(k), _s(b), _ratio(b, d), _ratio(b, k)])
    for wl, small, title in (("W1", "W1S", "marginal / command stage"),
                             ("W5", "W5S", "marginal / Python stage")):
        per = []
        for p in (TABLE_FLOOR[wl], "doit", "dask", "blut"):
            big, little = cpu(wl, p), cpu(small, p)
            per.append(None if big is None or little is None else (big - little) / (N - SMALL) * 1e3)
        rows.append([f"{title} ({SMALL}→{N})", *(_ms(x) for x in per), _ratio(per[3], per[1], 0.1),
                     _ratio(per[3], per[2], 0.1)])
    one = cpu("ONE", "blut")
    rows.append(["one-stage blut run", "-", "-", "-", _s(one), "-", "-"])
    return rows


def details(cmds: list[Cmd]) -> list[list[str]]:
    rows = [["workload", "peer", "runs", "median s", "min-max s", "CPU s (median)",
             "ru_maxrss MiB (median)", "command"]]
    for c in cmds:
        s = c.summary()
        if c.failed and not c.samples:
            rows.append([c.wl, c.peer, "0", "FAILED", c.failed, "", "", " ".join(c.argv)])
            continue
        rows.append([c.wl, c.peer, str(s["runs"]), f"{s['median_s']:.3f}",
                     f"{s['min_s']:.3f}-{s['max_s']:.3f}", f"{s['cpu_median_s']:.3f}",
                     f"{float(s['maxrss_median_kib'] or 0) / MIB:.0f}",
                     " ".join(Path(a).name if a.startswith("/") and " " not in a else a
                              for a in c.argv)])
    return rows


def show(rows: list[list[str]]) -> None:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for i, r in enumerate(rows):
        print("| " + " | ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)) + " |")
        if i == 0:
            print("|" + "|".join("-" * (w + 2) for w in widths) + "|")


@dataclass
class Watched:
    """The extra blut W1 run: what the sampler saw, and the checks of what it left behind."""

    failed: str = ""
    wall_s: float = 0.0
    cpu_s: float = 0.0
    vmhwm_kib: int | None = None  # the driver's own peak RSS
    ru_maxrss_kib: int = 0  # the largest of the driver and the processes it waited for
    samples: int = 0
    checks: list[tuple[bool, str]] = field(default_factory=list)


def watch_w1(work: Path, logs: Path, blut: venvs.Blut) -> Watched:
    """One more cold blut W1 run, watched while it runs, then checked."""
    folder = work / "w" / "W1-blut-watched"
    empty(folder)
    env = dict(blut.env, BLUT_HOME=str(folder / "home"), BLUT_LEDGER=str(folder / "ledger.json"))
    argv = [*blut.argv, "run", "pbbench:fanout", "-p", f"n={N}", "--jobs", "2", "--no-progress"]
    code, sample, seen = watched(argv, folder, env, logs / "W1-blut-watched.stderr",
                                 folder / "ledger.json")
    if code != 0:
        return Watched(failed=f"exit {code}")
    return Watched(wall_s=sample.wall, cpu_s=sample.cpu, vmhwm_kib=seen.vmhwm_kib,
                   ru_maxrss_kib=sample.maxrss_kib, samples=seen.ticks,
                   checks=check_w1(folder / "home", N, blut.argv, env, seen))


def report_load(load: dict[str, Any], skipped: list[str], work: Path) -> None:
    print(f"\n== machine load during the rounds ({load['seconds']:.0f} s, {os.cpu_count()} CPUs)")
    before, after = (" ".join(f"{x:.2f}" for x in load[k]) for k in ("loadavg_before", "loadavg_after"))
    print(f"  load average (1, 5, 15 min) before {before}, after {after}; other "
          f"processes used {load['others_share']:.0%} of the CPUs' time, these benchmarks "
          f"{load['ours_share']:.0%} (a process that escaped its parent's wait counts as 'other')")
    if load["stopped"]:
        print(f"  {load['stopped']}")
    for why in skipped:
        print(f"  skipped: {why}")
    print(f"  {file_system(work)}")


def _versions(bins: dict[str, Path], blut: venvs.Blut) -> dict[str, str]:
    """What is measured: blut's --version (with its commit) and the peers' pinned versions."""
    got = subprocess.run([*blut.argv, "--version"], capture_output=True, text=True, env=blut.env)
    out = {"blut": got.stdout.strip().removeprefix("blut ") or f"? (exit {got.returncode})",
           "python": sys.version.split()[0]}
    for peer, dist in (("doit", "doit"), ("dask", "dask")):
        if peer in bins:
            pin = [x for x in venvs.pins(peer).read_text().splitlines() if x.startswith(f"{dist}==")]
            out[peer] = pin[0].split("==")[1] if pin else "?"
    return out


def main() -> None:
    t0 = time.monotonic()
    rounds = int(os.environ.get("BLUT_BENCH_ROUNDS", "7"))
    seed = int(os.environ.get("BLUT_BENCH_SEED", str(int(time.time()))))
    bins: dict[str, Path] = {}
    skipped = []
    for peer in ("floor", "doit", "dask"):
        path, why = venvs.ensure(peer)
        if path is None:
            why = f"{why}; its rows are skipped"
            print(f"bench_peers: {why}")
            skipped.append(why)
        else:
            bins[peer] = path
    work = Path(tempfile.mkdtemp(prefix="blut-bench-peers-"))
    logs = work / "logs"
    logs.mkdir()
    blut = venvs.choose_blut(work, *venvs.ensure("blut"))
    if blut.venv is None:
        skipped.append("blut's scratch venv: blut ran on this machine's interpreter")
    cmds = commands(work, rounds, bins, blut)
    print(f"bench_peers: {len(cmds)} commands, {rounds} interleaved rounds ({3 * rounds} for W3), "
          f"shuffle seed {seed}; work folder {work}")
    if blut.venv is not None:
        print(f"blut: {ROOT} built as a wheel and installed into {blut.site} (pip --target), run by "
              f"the scratch venv {blut.venv} (no system site-packages; dependencies pinned by "
              "benchmarks/peers/requirements/blut.txt); the benchmark cookbook is a copy of "
              "benchmarks.peers.pbbench in that site, named by a dist-info there")
        print("bytecode: what pip wrote for blut's wheel and its venv (compileall for the cookbook "
              "copy), as the peers use what pip wrote into theirs; no PYTHONPYCACHEPREFIX; one "
              "untimed warm-up run of every command. W3H: `blut --version` and `python -c pass` "
              "on this machine's own interpreter (its editable installs and .pth files), the "
              "start-up every blut process would pay more there")
    else:
        print(f"bytecode: blut runs with PYTHONPYCACHEPREFIX={work / 'pycache'} and "
              "PYTHONDONTWRITEBYTECODE unset, after one untimed warm-up run of every command "
              "(this machine sets PYTHONDONTWRITEBYTECODE=1; an editable checkout would otherwise "
              "compile every module in every process); the peers use the bytecode pip wrote "
              "into their venvs")
    print("cold runs: each starts in a new empty work folder; the last run's folder is moved "
          "aside and deleted after all rounds, not just before the next run (see the file "
          "system line at the end)")
    versions = _versions(bins, blut)
    print("versions: " + ", ".join(f"{k} {v}" for k, v in versions.items()))
    load = measure(cmds, logs, seed)
    w = watch_w1(work, logs, blut)
    take_out_trash(work)
    rows = table(cmds, w.vmhwm_kib)
    print("\n== blut vs doit and dask (threads): median whole-process wall (runs: see below)")
    show(rows)
    print("* doit/dask RSS: wait4 ru_maxrss (largest of the command and its waited-for children)")
    print("\n== CPU (median user+sys of the command and its waited-for descendants)")
    cpu_rows = cpu_table(cmds)
    show(cpu_rows)
    print("\n== every command")
    show(details(cmds))
    for c in cmds:
        if c.failed:
            print(f"FAILED {c.key}: {c.failed}")
    print("\n== blut W1, one more cold run, watched")
    if w.failed:
        print(f"  the run failed: {w.failed} (see {logs})")
    else:
        print(f"  driver peak RSS: VmHWM of the blut process itself {(w.vmhwm_kib or 0) / MIB:.1f} "
              f"MiB (sampled from /proc/PID/status every 3 ms, {w.samples} samples); wait4 "
              f"ru_maxrss {w.ru_maxrss_kib / MIB:.1f} MiB (the largest of the driver and every "
              "process it waited for, the fork server among them)")
    w4 = _get(cmds, "W4", "blut")
    if w4 and w4.samples:
        w.checks.append(check_rerun(w4.workdir / "home", N))
    for ok, what in w.checks:
        print(f"  [{'ok' if ok else 'NO'}] {what}")
    report_load(load, skipped, work)
    print(f"  whole bench_peers: {time.monotonic() - t0:.0f} s")
    out = os.environ.get("BLUT_BENCH_JSON")
    if out:
        Path(out).write_text(json.dumps({
            "rounds": rounds, "seed": seed, "versions": versions, "load": load, "skipped": skipped,
            "venvs": {k: str(v.parent) for k, v in bins.items()}
            | {"blut": str(blut.venv) if blut.venv else None},
            "table": rows, "cpu_table": cpu_rows,
            "commands": [c.summary() for c in cmds], "blut_w1_watched": asdict(w),
        }, indent=2))
        print(f"  figures written to {out}")
    if not any(c.failed for c in cmds) and not w.failed:
        shutil.rmtree(work, ignore_errors=True)
    else:
        print(f"  kept {work} (a command failed; its stderr is in {logs})")


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    main()
