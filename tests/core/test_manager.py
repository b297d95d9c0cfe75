"""Plugin loading: deterministic order, isolation of broken plugins, blocking, strictness."""

from __future__ import annotations

from importlib import metadata as md

import pytest

from blut_core import App, PluginConflictError, PluginError, Settings
from blut_core.host.manager import BlutPluginManager, make_plugin_manager
from blut_core.testing import builtin_entry_points


def ep(name: str, value: str) -> md.EntryPoint:
    return md.EntryPoint(name=name, value=value, group="blut.plugins")


def test_builtins_load_in_a_deterministic_order() -> None:
    a = make_plugin_manager(cookbook_entry_points=(), entry_points=builtin_entry_points(), strict=True)
    b = make_plugin_manager(cookbook_entry_points=(), entry_points=list(reversed(builtin_entry_points())),
                            strict=True)
    assert [r.name for r in a.records] == [r.name for r in b.records]
    assert all(r.builtin and r.error is None for r in a.records)


def test_broken_plugin_is_skipped_and_recorded() -> None:
    pm = make_plugin_manager(cookbook_entry_points=(), entry_points=[*builtin_entry_points(),
                                           ep("broken", "no_such_module_for_blut:plugin")])
    broken = pm.record("broken")
    assert broken is not None and broken.state == "failed"
    assert "no_such_module_for_blut" in (broken.error or "")
    assert pm.get_plugin("broken") is None
    assert pm.record("launcher-local").state == "ok"  # type: ignore[union-attr]


def test_broken_plugin_is_fatal_in_strict_mode() -> None:
    with pytest.raises(PluginError, match="broken"):
        make_plugin_manager(cookbook_entry_points=(), entry_points=[*builtin_entry_points(),
                                          ep("broken", "no_such_module_for_blut:plugin")],
                            strict=True)


def test_strict_mode_comes_from_the_environment(tmp_path) -> None:  # type: ignore[no-untyped-def]
    settings = Settings.from_environ({"BLUT_HOME": str(tmp_path), "BLUT_STRICT_PLUGINS": "1",
                                      "BLUT_DISABLE_PLUGINS": "cli-plan, cli-recipes"})
    assert settings.strict_plugins
    assert settings.disabled_plugins == ("cli-plan", "cli-recipes")


def test_disabled_plugin_is_not_registered() -> None:
    pm = make_plugin_manager(cookbook_entry_points=(), entry_points=builtin_entry_points(),
                             blocked=["cli-plan"])
    assert pm.get_plugin("cli-plan") is None
    assert pm.record("cli-plan").state == "disabled"  # type: ignore[union-attr]
    app = App(pm, Settings.from_environ({"BLUT_HOME": "/tmp/unused"}))
    assert "plan" not in app.registry.commands and "run" in app.registry.commands


def test_essential_plugin_cannot_be_disabled() -> None:
    with pytest.raises(PluginError, match="essential"):
        make_plugin_manager(cookbook_entry_points=(), entry_points=builtin_entry_points(),
                            blocked=["launcher-local"])


def test_duplicate_names_are_refused_naming_both_providers() -> None:
    eps = [*builtin_entry_points(), ep("impostor", "tests.support.plugins:extra")]
    pm = make_plugin_manager(cookbook_entry_points=(), entry_points=eps)
    app = App(pm, Settings.from_environ({"BLUT_HOME": "/tmp/unused"}))
    assert app.registry.launchers["local"].plugin == "launcher-local"  # the first provider keeps it
    impostor = pm.record("impostor")
    assert impostor is not None and impostor.state == "failed"
    assert "'local' is already provided by launcher-local (blut " in (impostor.error or "")
    strict = App(make_plugin_manager(cookbook_entry_points=(), entry_points=eps, strict=True),
                 Settings.from_environ({"BLUT_HOME": "/tmp/unused"}))
    with pytest.raises(PluginConflictError) as err:
        _ = strict.registry.launchers
    assert "launcher-local (blut " in err.value.message and "impostor" in err.value.message


def test_misspelt_hook_is_a_load_error() -> None:
    pm = make_plugin_manager(cookbook_entry_points=(), entry_points=[*builtin_entry_points(),
                                           ep("typo", "tests.support.plugins:misspelt")])
    record = pm.record("typo")
    assert record is not None and "blut_launcherz" in (record.error or "")


def test_each_app_has_its_own_manager(plugin_manager) -> None:  # type: ignore[no-untyped-def]
    other = make_plugin_manager(cookbook_entry_points=(), entry_points=builtin_entry_points(),
                                strict=True)
    assert other is not plugin_manager
    plugin_manager.unregister(name="cli-plan")
    assert other.get_plugin("cli-plan") is not None


def test_the_fast_hook_lookup_finds_what_pluggy_finds() -> None:
    """The manager looks for hook marks on functions only; every built-in and installed
    plugin module registers the same implementations as with pluggy's own lookup."""
    import pluggy

    from blut_core.host.entrypoints import installed

    modules = [(ep.name, ep.load()) for ep in installed(None)]

    def impls(pm: BlutPluginManager) -> list[tuple[str, str, str]]:
        for name, module in modules:
            pm.register(module, name=name)
        return sorted((c.name, i.plugin_name, i.function.__qualname__)
                      for c in vars(pm.hook).values() if isinstance(c, pluggy.HookCaller)
                      for i in c.get_hookimpls())

    plain = BlutPluginManager()
    plain.parse_hookimpl_opts = (  # type: ignore[method-assign]
        lambda plugin, name: pluggy.PluginManager.parse_hookimpl_opts(plain, plugin, name))
    found = impls(BlutPluginManager())
    assert found == impls(plain) and len(found) > 30
