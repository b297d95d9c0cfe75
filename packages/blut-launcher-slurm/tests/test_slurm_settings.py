"""The Slurm launcher's settings: defaults, each field's check, and a config table."""

from __future__ import annotations

import pytest

pytest.importorskip("blut_launcher_slurm",
                    reason="not installed (pip install -e packages/blut-launcher-slurm)")

from blut_launcher_slurm.settings import SettingsError, SlurmSettings, reserved_option


def test_defaults() -> None:
    s = SlurmSettings()
    assert (s.partition, s.account, s.qos, s.extra_sbatch_args) == (None, None, None, ())
    assert s.poll_interval == 2.0 and s.lost_job_grace == 60.0


def test_good_values() -> None:
    s = SlurmSettings(partition="debug,gpu-a100", account="lab_1", qos="high.prio",
                      extra_sbatch_args=["--constraint=fast", "--gres", "gpu:1", "-v"],
                      poll_interval=0.1, lost_job_grace=0)
    assert s.extra_sbatch_args == ("--constraint=fast", "--gres", "gpu:1", "-v")
    assert SlurmSettings(extra_sbatch_args="--exclusive").extra_sbatch_args == ("--exclusive",)


@pytest.mark.parametrize(("kw", "message"), [
    ({"partition": "a b"}, "slurm.partition: must be comma-separated names"),
    ({"partition": "a,,b"}, "slurm.partition"),
    ({"partition": ""}, "slurm.partition"),
    ({"partition": 3}, "slurm.partition: must be a string, not int"),
    ({"account": "a,b"}, "slurm.account: must be a name"),
    ({"account": "$(id)"}, "slurm.account"),
    ({"qos": "x\ny"}, "slurm.qos"),
    ({"extra_sbatch_args": ("--mem=1G",)},
     "slurm.extra_sbatch_args: '--mem=1G' sets --mem, which blut decides"),
    ({"extra_sbatch_args": ("--time", "5")}, "sets --time"),
    ({"extra_sbatch_args": ("--job",)}, "sets --job-name"),
    ({"extra_sbatch_args": ("--mem-per",)}, "sets --mem-per-cpu"),
    ({"extra_sbatch_args": ("-J", "x")}, "sets -J"),
    ({"extra_sbatch_args": ("-vo", "x")}, "sets -o"),
    ({"extra_sbatch_args": ("--export=NONE",)}, "sets --export"),
    ({"extra_sbatch_args": ("--requeue",)}, "sets --requeue"),
    ({"extra_sbatch_args": ("-p", "debug")}, "sets -p"),
    ({"extra_sbatch_args": ("--partition=x",)}, "sets --partition"),
    ({"extra_sbatch_args": ("--wrap=true",)}, "sets --wrap"),
    ({"extra_sbatch_args": (3,)}, "must hold strings, not int"),
    ({"extra_sbatch_args": ("a\0b",)}, "NUL"),
    ({"poll_interval": 0}, "slurm.poll_interval: must be from 0.1 to 3600 seconds (got 0)"),
    ({"poll_interval": float("nan")}, "slurm.poll_interval"),
    ({"poll_interval": "2"}, "slurm.poll_interval: must be a number of seconds, not str"),
    ({"poll_interval": True}, "slurm.poll_interval: must be a number"),
    ({"lost_job_grace": -1}, "slurm.lost_job_grace: must be from 0 to 86400"),
    ({"lost_job_grace": float("inf")}, "slurm.lost_job_grace"),
])
def test_each_bad_value_names_its_field_in_one_line(kw: dict[str, object], message: str) -> None:
    with pytest.raises(SettingsError) as info:
        SlurmSettings(**kw)  # type: ignore[arg-type]
    text = str(info.value)
    assert text.startswith(message) or message in text, text
    assert "\n" not in text
    assert info.value.field == next(iter(kw))


@pytest.mark.parametrize(("arg", "reserved"), [
    ("--mem", "--mem"), ("--mem=4G", "--mem"), ("--me", "--mem"), ("--cpus-per-task=2", "--cpus-per-task"),
    ("-c4", "-c"), ("-t", "-t"), ("-HJx", "-J"),
    ("--mem-bind=local", None), ("--exclusive", None), ("--constraint=a", None), ("--time-min=5", None),
    ("--nodelist=n1", None), ("--ntasks-per-node=1", None), ("-C", None), ("-Cfast", None), ("-v", None),
    ("-H", None), ("value", None), ("-", None), ("--", None),
])
def test_reserved_options_in_full_abbreviated_or_bundled(arg: str, reserved: str | None) -> None:
    assert reserved_option(arg) == reserved


def test_from_a_config_table() -> None:
    s = SlurmSettings.from_mapping(
        {"partition": "debug", "extra_sbatch_args": ["--exclusive"], "poll_interval": 1})
    assert s == SlurmSettings(partition="debug", extra_sbatch_args=("--exclusive",), poll_interval=1)
    with pytest.raises(SettingsError, match=r"slurm\.partiton: unknown setting \(known: partition,"):
        SlurmSettings.from_mapping({"partiton": "debug"})
    with pytest.raises(SettingsError, match=r"slurm\.extra_sbatch_args: must be a list of strings, not int"):
        SlurmSettings.from_mapping({"extra_sbatch_args": 5})
    with pytest.raises(SettingsError, match=r"slurm\.lost_job_grace"):
        SlurmSettings.from_mapping({"lost_job_grace": "soon"})


def test_settings_are_frozen() -> None:
    with pytest.raises(AttributeError):
        SlurmSettings().partition = "x"  # type: ignore[misc]
