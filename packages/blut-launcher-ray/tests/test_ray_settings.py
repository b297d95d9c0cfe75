"""The Ray launcher's settings: defaults, each field's check, a config table, ray.init's kwargs."""

from __future__ import annotations

import pytest

pytest.importorskip("blut_launcher_ray", reason="not installed: pip install -e packages/blut-launcher-ray")

from blut_launcher_ray.settings import RaySettings, SettingsError, check_address


def test_defaults_leave_the_choice_to_ray() -> None:
    s = RaySettings()
    assert (s.address, s.namespace, dict(s.runtime_env), s.log_to_driver) == (None, None, {}, False)
    assert s.init_kwargs() == {"log_to_driver": False}


def test_every_setting_reaches_ray_init() -> None:
    s = RaySettings(address="127.0.0.1:6390", namespace="blut-run_1", log_to_driver=True,
                    runtime_env={"env_vars": {"A": "1"}, "working_dir": "/x"}, poll_interval=0.05)
    assert s.init_kwargs() == {"address": "127.0.0.1:6390", "namespace": "blut-run_1", "log_to_driver": True,
                               "runtime_env": {"env_vars": {"A": "1"}, "working_dir": "/x"}}
    kwargs = s.init_kwargs()
    kwargs["runtime_env"]["env_vars"]["A"] = "changed"
    assert s.runtime_env["env_vars"]["A"] == "1"  # a copy goes to Ray


@pytest.mark.parametrize("address", ["auto", "local", "127.0.0.1:6390", "head-node.example:1",
                                     "ray://127.0.0.1:10001", "[::1]:6379", "node1:65535"])
def test_good_addresses(address: str) -> None:
    check_address(address)
    assert RaySettings(address=address).address == address


@pytest.mark.parametrize("address", ["", "127.0.0.1", "127.0.0.1:", ":6379", "host:0", "host:65536",
                                     "host:x", "http://host:1", "ray://host", "a b:1", "host:1;x"])
def test_bad_addresses(address: str) -> None:
    with pytest.raises(SettingsError, match=r"^ray\.address: must be auto, local, HOST:PORT") as info:
        RaySettings(address=address)
    assert info.value.field == "address"


@pytest.mark.parametrize(("kw", "message"), [
    ({"address": 6379}, "ray.address: must be a string, not int"),
    ({"namespace": ""}, "ray.namespace: must be 1-64"),
    ({"namespace": "a b"}, "ray.namespace"),
    ({"namespace": "x" * 65}, "ray.namespace"),
    ({"runtime_env": ["pip"]}, "ray.runtime_env: must be a table, not list"),
    ({"runtime_env": {1: "x"}}, "ray.runtime_env: keys must be strings"),
    ({"runtime_env": {"env_vars": {"A": 1}}}, "ray.runtime_env: env_vars must map strings to strings"),
    ({"runtime_env": {"env_vars": "A=1"}}, "ray.runtime_env: env_vars"),
    ({"runtime_env": {"x": object()}}, "ray.runtime_env: must be plain data"),
    ({"runtime_env": {"x": float("nan")}}, "ray.runtime_env: must be plain data"),
    ({"log_to_driver": "yes"}, "ray.log_to_driver: must be true or false"),
    ({"poll_interval": 0}, "ray.poll_interval: must be from 0.01 to 3600 seconds"),
    ({"poll_interval": float("inf")}, "ray.poll_interval"),
    ({"poll_interval": "1"}, "ray.poll_interval: must be a number of seconds, not str"),
])
def test_each_bad_value_names_its_field_in_one_line(kw: dict[str, object], message: str) -> None:
    with pytest.raises(SettingsError) as info:
        RaySettings(**kw)  # type: ignore[arg-type]
    assert str(info.value).startswith(message), str(info.value)
    assert "\n" not in str(info.value)


def test_from_a_config_table() -> None:
    assert RaySettings.from_mapping({"address": "auto", "namespace": "n"}) == RaySettings(address="auto",
                                                                                        namespace="n")
    with pytest.raises(SettingsError, match=r"^ray\.adress: unknown setting \(known: address,"):
        RaySettings.from_mapping({"adress": "auto"})


def test_settings_are_frozen() -> None:
    s = RaySettings(runtime_env={"env_vars": {}})
    with pytest.raises(AttributeError):
        s.address = "auto"  # type: ignore[misc]
    with pytest.raises(TypeError):
        s.runtime_env["pip"] = ["x"]  # type: ignore[index]


def test_a_cluster_address_where_nothing_listens_stops_the_run_at_once() -> None:
    """`ray.init` waits about two minutes for a GCS that is not there; the launcher says in
    one line, within seconds, that nothing answers at the address, naming it. (In a process
    of its own: this one may be connected to the test cluster already.)"""
    pytest.importorskip("ray", reason="ray is not installed")
    import socket
    import subprocess
    import sys

    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    code = ("from blut_core import LauncherError\n"
            "from blut_launcher_ray.launcher import RayLauncher\n"
            "from blut_launcher_ray.settings import RaySettings\n"
            f"launcher = RayLauncher(RaySettings(address='127.0.0.1:{port}'))\n"
            "try:\n"
            "    launcher.prepare({}, [])\n"
            "except LauncherError as exc:\n"
            "    print(exc.message)\n"
            "    print(exc.hint)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60)
    message, hint = [*done.stdout.splitlines(), "", ""][:2]
    assert message == f"ray: nothing answers at 127.0.0.1:{port} (Connection refused)", done.stderr
    assert "RAY_ADDRESS" in hint


def test_the_head_endpoint_of_each_address_form() -> None:
    from blut_launcher_ray.settings import head_endpoint

    assert head_endpoint("10.0.0.5:6379") == ("10.0.0.5", 6379)
    assert head_endpoint("ray://head.example:10001") == ("head.example", 10001)
    assert head_endpoint("auto") is None and head_endpoint("local") is None
    assert head_endpoint(None) is None and head_endpoint("no port") is None
