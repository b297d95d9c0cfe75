"""Capture real squeue/sacct reports for the status parser's tests (tests/data/).

Needs the two-node test cluster with accounting (tools/cluster/slurm-up.sh STATE_DIR
--nodes 2 --accounting, then ``. STATE_DIR/env.sh``); takes node2 down and back with
slurm-node.sh. Submits one run's worth of jobs, rendered by blut_launcher_slurm.script,
that end every way a job can here (completed, exit 3, killed by a signal, out of memory,
timeout, cancelled while running and while pending, node failure, launch failure), plus one
job of another run, and writes the reports of the queries that blut_launcher_slurm.status
builds: while jobs run, and when all are done. Takes about two minutes (the timeout case).

    python packages/blut-launcher-slurm/capture_samples.py packages/blut-launcher-slurm/tests/data
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

from blut_launcher_slurm.script import BatchJob, job_name_for, render_script, sbatch_argv, sbatch_environment
from blut_launcher_slurm.settings import SlurmSettings
from blut_launcher_slurm.status import QUERY_ENV, sacct_argv, squeue_argv

TOOLS = Path(__file__).resolve().parents[2] / "tools" / "cluster"
HOG = ("import sys, time\n"
       "b = [bytearray(1 << 20) for _ in range(int(sys.argv[1]))]\n"
       "time.sleep(float(sys.argv[2]))\n")


def run(argv: tuple[str, ...] | list[str], **kw: object) -> str:
    p = subprocess.run(list(argv), capture_output=True, text=True, env={**os.environ, **QUERY_ENV}, **kw)  # type: ignore[call-overload]
    if p.returncode != 0:
        raise SystemExit(f"{argv[0]} failed ({p.returncode}): {p.stderr.strip()}")
    return str(p.stdout)


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    work = Path(os.environ.get("BLUT_SLURM_STATE_DIR", "/tmp")) / "capture"
    work.mkdir(exist_ok=True)
    (work / "hog.py").write_text(HOG)
    tag = "cap" + datetime.now().strftime("%H%M%S")
    other_tag = tag + "-other"
    since = datetime.now() - timedelta(minutes=5)
    py = sys.executable

    def submit(label: str, argv: tuple[str, ...], *, run_tag: str = tag, extra: tuple[str, ...] = (),
               logdir: Path = work, **kw: object) -> str:
        job = BatchJob(job_name=job_name_for(run_tag), run_tag=run_tag, argv=argv, workdir=str(work),
                       stdout=str(logdir / f"{label}.out"), stderr=str(logdir / f"{label}.err"),
                       env={"PATH": os.environ["PATH"]}, **kw)  # type: ignore[arg-type]
        settings = SlurmSettings(extra_sbatch_args=extra)
        p = subprocess.run(sbatch_argv(job, settings), input=render_script(job), capture_output=True,
                           text=True, env=sbatch_environment(os.environ))
        if p.returncode != 0:
            raise SystemExit(f"sbatch {label}: {p.stderr.strip()}")
        job_id = p.stdout.strip().split(";")[0]
        print(f"{label}: job {job_id}", flush=True)
        return job_id

    def state(job_id: str) -> str:
        return run(["squeue", "--noheader", "--states=all", "-j", job_id, "-o", "%T"]).strip()

    def wait_state(job_id: str, want: str, limit: float = 60) -> None:
        end = time.monotonic() + limit
        while state(job_id) != want:
            if time.monotonic() > end:
                raise SystemExit(f"job {job_id} not {want} after {limit}s (is {state(job_id)!r})")
            time.sleep(0.2)

    ids = {
        "completed": submit("completed", ("true",)),
        "exit3": submit("exit3", ("sh", "-c", "exit 3")),
        "signal9": submit("signal9", ("sh", "-c", "kill -9 $$")),
        "oom": submit("oom", (py, str(work / "hog.py"), "400", "0"), memory_cap=100 << 20),
        "rss": submit("rss", (py, str(work / "hog.py"), "200", "4"), memory_cap=500 << 20),
        "timeout": submit("timeout", ("sleep", "600"), hard_timeout=30),
        "cancel_running": submit("cancel_running", ("sleep", "600")),
        "cancel_pending": submit("cancel_pending", ("true",), extra=("--hold",)),
        "node_fail": submit("node_fail", ("sleep", "600"), extra=("--nodelist=node2",)),
        "launch_fail": submit("launch_fail", ("true",), logdir=work / "missing-dir"),
        "other_run": submit("other_run", ("true",), run_tag=other_tag),
    }
    for key in ("cancel_running", "node_fail", "rss"):
        wait_state(ids[key], "RUNNING")
    name = job_name_for(tag)
    (out / "squeue_running.txt").write_text(run(squeue_argv(name)))
    (out / "sacct_running.txt").write_text(run(sacct_argv(name, since)))

    run(["scancel", ids["cancel_running"]])
    run(["scancel", ids["cancel_pending"]])
    node = [str(TOOLS / "slurm-node.sh"), os.environ["BLUT_SLURM_STATE_DIR"]]
    subprocess.run([*node, "down", "node2", "--wait"], check=True)
    for key in ("timeout", "node_fail", "cancel_running", "rss"):
        end = time.monotonic() + 180
        while state(ids[key]) in ("PENDING", "RUNNING", "COMPLETING"):
            if time.monotonic() > end:
                raise SystemExit(f"{key} did not end")
            time.sleep(0.5)
    time.sleep(2)  # the last records reach slurmdbd
    (out / "squeue_done.txt").write_text(run(squeue_argv(name)))
    (out / "sacct_done.txt").write_text(run(sacct_argv(name, since)))
    lines = [f"{key}={job_id}" for key, job_id in ids.items()]
    (out / "jobs.txt").write_text("\n".join(lines) + "\n")
    subprocess.run([*node, "up", "node2"], check=True)
    print(f"captured into {out}")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
