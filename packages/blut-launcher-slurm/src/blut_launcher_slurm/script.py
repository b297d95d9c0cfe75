"""One stage attempt as a Slurm batch job: the sbatch command line and the batch script.

sbatch is run without a shell (:func:`sbatch_argv` is an argv), and the script it is given
(:func:`render_script`) sets the job's environment, enters its working directory and
``exec``\\ s the stage's argv, every value shell-quoted: nothing a stage's argv, paths or
environment hold is ever interpreted by a shell. Job name and run tag are checked to be
plain names instead, since Slurm shows and matches them (``squeue --name``).

The job always asks for one task on one node and is never requeued by Slurm (a job of a
lost node ends NODE_FAIL, and blut decides about a retry). Its environment is the one blut
gives it, exported by the script, over the little that sbatch passes on: run sbatch with
:func:`sbatch_environment`, not the driver's whole environment. (``--export=NONE`` would
pass nothing, but then Slurm loads the user's login environment on the node for every job,
which cost ~2 s a job on the test cluster; ``--export=ALL`` costs nothing.)
"""

from __future__ import annotations

import math
import re
import shlex
import types
from collections.abc import Iterable, Mapping

import attrs

from blut_launcher_slurm.settings import SlurmSettings

MIB = 1 << 20
_TAG = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}\Z")
_JOB_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.+-]{0,127}\Z")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


def job_name_for(run_tag: str) -> str:
    """The one job name every job of a run gets: ``blut.<run_tag>``."""
    return f"blut.{run_tag}"


def mem_mib(cap_bytes: int) -> int:
    """``--mem`` in MiB for a cap in bytes, rounded up (a cap is never made smaller)."""
    return max(1, -(-cap_bytes // MIB))


def slurm_time(seconds: float) -> str:
    """``--time`` for a hard timeout: ``D-HH:MM:SS``, rounded up to whole minutes (at least 1).

    Slurm's time limits count in minutes; rounding up means the job is never killed by
    Slurm before blut's own hard timeout.
    """
    minutes = max(1, math.ceil(seconds / 60 - 1e-9))
    days, rest = divmod(minutes, 24 * 60)
    hours, mins = divmod(rest, 60)
    return f"{days}-{hours:02d}:{mins:02d}:00"


def log_pattern(path: str) -> str:
    """``path`` as an sbatch ``--output``/``--error`` pattern that means exactly ``path``.

    Slurm replaces ``%j``, ``%x``... in these, and ``%%`` is a literal ``%``. A backslash
    anywhere turns replacement off, but Slurm then drops every backslash from the name
    (verified with 22.05), so a path with one cannot be named at all: ``ValueError``.
    """
    if "\\" in path:
        raise ValueError(f"log path {path!r}: Slurm drops backslashes from log file names")
    return path.replace("%", "%%")


def _no_nul(field: str, value: str) -> None:
    if "\0" in value:
        raise ValueError(f"{field}: contains a NUL byte")


def _check_tag(_: object, attribute: attrs.Attribute[str], value: str) -> None:
    if not isinstance(value, str) or not _TAG.match(value):
        raise ValueError(f"{attribute.name}: must be 1-64 letters, digits and _.- starting with a letter "
                         f"or digit (got {value!r})")


def _check_job_name(instance: BatchJob, attribute: attrs.Attribute[str], value: str) -> None:
    if not isinstance(value, str) or not _JOB_NAME.match(value):
        raise ValueError(f"{attribute.name}: must be 1-128 letters, digits and _.+- (got {value!r})")


def _check_argv(_: object, attribute: attrs.Attribute[tuple[str, ...]], value: tuple[str, ...]) -> None:
    if not value:
        raise ValueError(f"{attribute.name}: must not be empty")
    for arg in value:
        if not isinstance(arg, str):
            raise ValueError(f"{attribute.name}: must hold strings, not {type(arg).__name__}")
        _no_nul(attribute.name, arg)
    if not value[0]:
        raise ValueError(f"{attribute.name}: the program (argv[0]) is empty")


def _check_path(_: object, attribute: attrs.Attribute[str], value: str) -> None:
    if not isinstance(value, str) or not value:
        raise ValueError(f"{attribute.name}: must be a non-empty path")
    _no_nul(attribute.name, value)


def _check_env(_: object, attribute: attrs.Attribute[Mapping[str, str]], value: Mapping[str, str]) -> None:
    for name, val in value.items():
        if not isinstance(name, str) or not _ENV_NAME.match(name):
            raise ValueError(f"{attribute.name}: {name!r} is not a variable name a shell can export")
        if not isinstance(val, str):
            raise ValueError(f"{attribute.name}: {name} must be a string, not {type(val).__name__}")
        _no_nul(f"{attribute.name}: {name}", val)


def _check_log(instance: object, attribute: attrs.Attribute[str], value: str) -> None:
    _check_path(instance, attribute, value)
    if "\\" in value:
        raise ValueError(f"{attribute.name}: Slurm drops backslashes from log file names ({value!r})")


def _check_cap(_: object, attribute: attrs.Attribute[int | None], value: int | None) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{attribute.name}: must be a positive number of bytes (got {value!r})")


def _check_cpus(_: object, attribute: attrs.Attribute[int], value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{attribute.name}: must be a whole number of CPUs, at least 1 (got {value!r})")


def _check_timeout(_: object, attribute: attrs.Attribute[float | None], value: float | None) -> None:
    if value is None:
        return
    number = not isinstance(value, bool) and isinstance(value, int | float)
    if not number or not math.isfinite(value) or value <= 0:
        raise ValueError(f"{attribute.name}: must be a positive number of seconds (got {value!r})")


def _argv(value: Iterable[str]) -> tuple[str, ...]:
    return tuple(value)


def _frozen_env(value: Mapping[str, str]) -> Mapping[str, str]:
    return types.MappingProxyType(dict(value))


@attrs.frozen(kw_only=True)
class BatchJob:
    """What one sbatch submission carries.

    ``job_name`` is the run's (every job of a run has the same, see :func:`job_name_for`)
    and must contain ``run_tag``. ``memory_cap`` is the kernel cap in bytes (``--mem``,
    enforced by Slurm's cgroup), ``hard_timeout`` seconds (``--time``), ``cpus`` whole
    CPUs (``--cpus-per-task``). ``stdout``/``stderr`` are the log files, ``workdir`` the
    directory the stage starts in (it, and the logs' directories, must exist: a job whose
    log cannot be opened ends FAILED with reason JobLaunchFailure), ``env`` its environment.
    """

    job_name: str = attrs.field(validator=_check_job_name)
    run_tag: str = attrs.field(validator=_check_tag)
    argv: tuple[str, ...] = attrs.field(converter=_argv, validator=_check_argv)
    workdir: str = attrs.field(validator=_check_path)
    stdout: str = attrs.field(validator=_check_log)
    stderr: str = attrs.field(validator=_check_log)
    env: Mapping[str, str] = attrs.field(factory=dict, converter=_frozen_env, validator=_check_env)
    memory_cap: int | None = attrs.field(default=None, validator=_check_cap)
    cpus: int = attrs.field(default=1, validator=_check_cpus)
    hard_timeout: float | None = attrs.field(default=None, validator=_check_timeout)

    def __attrs_post_init__(self) -> None:
        if self.run_tag not in self.job_name:
            raise ValueError(f"job_name: {self.job_name!r} does not contain the run tag {self.run_tag!r}")


def sbatch_argv(job: BatchJob, settings: SlurmSettings, script_path: str | None = None) -> tuple[str, ...]:
    """The sbatch command for ``job`` (run it without a shell).

    With ``script_path`` sbatch reads the batch script from that file, else from its
    standard input. ``--parsable`` makes sbatch print just ``JOBID`` (or ``JOBID;CLUSTER``).
    """
    args = [
        "sbatch",
        "--parsable",
        f"--job-name={job.job_name}",
        "--nodes=1",
        "--ntasks=1",
        f"--cpus-per-task={job.cpus}",
    ]
    if job.memory_cap is not None:
        args.append(f"--mem={mem_mib(job.memory_cap)}M")
    if job.hard_timeout is not None:
        args.append(f"--time={slurm_time(job.hard_timeout)}")
    args += [
        f"--output={log_pattern(job.stdout)}",
        f"--error={log_pattern(job.stderr)}",
        f"--chdir={job.workdir}",
        "--export=ALL",
        "--no-requeue",
    ]
    if settings.partition is not None:
        args.append(f"--partition={settings.partition}")
    if settings.account is not None:
        args.append(f"--account={settings.account}")
    if settings.qos is not None:
        args.append(f"--qos={settings.qos}")
    args += settings.extra_sbatch_args
    if script_path is not None:
        args.append(script_path)
    return tuple(args)


#: what :func:`sbatch_environment` keeps of the submitting process's environment
SBATCH_ENV_KEEP = ("PATH", "HOME", "USER", "LOGNAME", "SHELL", "LANG", "LC_ALL", "TZ")


def sbatch_environment(submitter: Mapping[str, str]) -> dict[str, str]:
    """The environment to run sbatch with: what sbatch needs, nothing of the driver's own.

    ``SLURM_*`` (``SLURM_CONF`` above all) and a few basics (:data:`SBATCH_ENV_KEEP`);
    sbatch passes them on to the job (``--export=ALL``), and the script's exports of the
    job's own environment come on top.
    """
    return {k: v for k, v in submitter.items() if k.startswith("SLURM_") or k in SBATCH_ENV_KEEP}


def render_script(job: BatchJob) -> str:
    """The batch script: export the environment, enter the working directory, exec argv.

    ``exec`` makes the stage the batch step's own process, so the job's exit code and
    signal are the stage's. Steps the stage starts itself (``srun``) inherit this
    environment (``SLURM_EXPORT_ENV=ALL``, whatever the submitting side had).
    """
    q = shlex.quote
    lines = [
        "#!/bin/bash",
        f"# blut batch job {job.job_name} of run {job.run_tag}",
    ]
    env = dict(job.env)
    env.setdefault("SLURM_EXPORT_ENV", "ALL")
    lines += [f"export {name}={q(value)}" for name, value in env.items()]
    workdir = q(job.workdir)
    lines.append(f"cd -- {workdir} || {{ printf 'blut: cannot enter %s\\n' {workdir} >&2; exit 1; }}")
    lines.append("exec -- " + " ".join(q(arg) for arg in job.argv))
    return "\n".join(lines) + "\n"
