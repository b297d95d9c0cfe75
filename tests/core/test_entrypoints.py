"""The entry-point scan is cached per interpreter and sys.path, and never goes stale."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib import metadata as md
from pathlib import Path

from blut_core.host import entrypoints
from blut_core.testing import installed_distribution

LIST = """
import json, sys
from blut_core.cli import main
try:
    main(["plugins", "list", "--json"])
except SystemExit:
    pass
print(json.dumps("importlib.metadata" in sys.modules), file=sys.stderr)
"""


def _plugins(site: Path, home: Path, tmp_path: Path) -> tuple[dict[str, dict[str, object]], bool]:
    env = {**os.environ, "BLUT_HOME": str(home), "BLUT_NO_STALE_CHECK": "1",
           "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}
    r = subprocess.run([sys.executable, "-c", LIST], capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr
    return {p["name"]: p for p in json.loads(r.stdout)}, json.loads(r.stderr.strip().splitlines()[-1])


def test_a_cached_scan_is_what_importlib_metadata_finds(tmp_path: Path) -> None:
    installed = md.entry_points()
    expected = sorted((ep.name, ep.value, group) for group in entrypoints.GROUPS
                      for ep in installed.select(group=group))
    first = entrypoints.installed(tmp_path)
    again = entrypoints.installed(tmp_path)               # from the file
    assert [p.name for p in tmp_path.iterdir()] == [entrypoints.cache_file(tmp_path).name]
    assert sorted((ep.name, ep.value, ep.group) for ep in first) == expected
    assert again == first
    assert {ep.name: ep.distribution for ep in again}["launcher-local"] == "blut"


def test_installing_changing_or_breaking_a_plugin_is_seen_at_the_next_start(tmp_path: Path) -> None:
    site, cache = tmp_path / "site", tmp_path / "home"
    site.mkdir()
    cache.mkdir()
    (site / "good_plugin.py").write_text(
        "from blut_core import hookimpl\n\n@hookimpl\ndef blut_launchers():\n    return []\n")
    before, _ = _plugins(site, cache, tmp_path)
    assert "extra" not in before
    scanned = {f: f.stat().st_mtime_ns for f in (cache / "entry-points").iterdir()}
    assert scanned                                                    # the first start scans
    assert _plugins(site, cache, tmp_path) == (before, False)         # the next one does not
    assert {f: f.stat().st_mtime_ns for f in (cache / "entry-points").iterdir()} == scanned
    installed_distribution(site, "blut-extra", "1.0", {"blut.plugins": {"extra": "good_plugin"}})
    after, _ = _plugins(site, cache, tmp_path)                        # a new distribution
    assert (after["extra"]["state"], after["extra"]["version"]) == ("ok", "1.0")
    installed_distribution(site, "blut-extra", "1.0", {"blut.plugins": {"extra": "no_such_module"}})
    broken, _ = _plugins(site, cache, tmp_path)                       # rewritten in place
    assert broken["extra"]["state"] == "failed" and "no_such_module" in str(broken["extra"]["error"])
    written = {f: f.stat().st_mtime_ns for f in (cache / "entry-points").iterdir()}
    again, _ = _plugins(site, cache, tmp_path)                        # the failure shows every time,
    assert again["extra"]["state"] == "failed"
    assert {f: f.stat().st_mtime_ns for f in (cache / "entry-points").iterdir()} == written  # cached


def test_an_unwritable_cache_directory_only_costs_the_scan(tmp_path: Path) -> None:
    blocked = tmp_path / "file"
    blocked.write_text("not a directory")
    assert {ep.name for ep in entrypoints.installed(blocked)} == \
        {ep.name for ep in entrypoints.installed(tmp_path / "ok")}


def test_a_command_on_a_fresh_machine_makes_no_home(tmp_path: Path) -> None:
    """The cache lives in blut's home, and only once something made the home."""
    site = tmp_path / "site"
    site.mkdir()
    plugins, _ = _plugins(site, tmp_path / "fresh-home", tmp_path)
    assert plugins["launcher-local"]["state"] == "ok"
    assert not (tmp_path / "fresh-home").exists()


def test_the_scan_finds_what_importlib_metadata_finds_without_importing_it(tmp_path: Path) -> None:
    """Distributions on two path entries (the first wins), comments, odd spacing, an
    egg-info with PKG-INFO, a distribution without blut entry points: the scan of the
    folders gives what importlib.metadata gives, and a start does not import it."""
    first, second = tmp_path / "first", tmp_path / "second"
    installed_distribution(first, "blut-dup", "2.0", {"blut.plugins": {"dup": "mod_a"}})
    installed_distribution(second, "blut_dup", "1.0", {"blut.plugins": {"dup": "mod_b"}})
    installed_distribution(second, "other", "1.0", {"console_scripts": {"x": "y:z"}})
    installed_distribution(second, "Odd.Name", "3.1", {})
    odd = second / "Odd.Name-3.1.dist-info"
    (odd / "entry_points.txt").write_text(
        "# a comment\n\n[blut.cookbooks]\n  book =  odd.book  \n[blut.plugins]\nextra=odd.plugin:hooks\n",
        encoding="utf-8")
    egg = second / "eggy-0.1.egg-info"
    egg.mkdir()
    (egg / "PKG-INFO").write_text("Metadata-Version: 1.1\nName: eggy\nVersion: 0.1\n\nbody\n")
    (egg / "entry_points.txt").write_text("[blut.plugins]\neggy = eggy.plugin\n")
    code = ("import json, sys\n"
            f"sys.path[:0] = [{str(first)!r}, {str(second)!r}]\n"
            "from blut_core.host import entrypoints as e\n"
            "fast = e.scan()\n"
            "loaded = 'importlib.metadata' in sys.modules\n"
            "print(json.dumps([fast, e.scan_metadata(), loaded]))\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                       env={**os.environ, "BLUT_NO_STALE_CHECK": "1"})
    fast, slow, loaded = json.loads(r.stdout)
    assert fast == slow
    assert not loaded
    mine = {ep[0]: ep for ep in fast[0]}
    assert mine["dup"][1:] == ["mod_a", "blut.plugins", "blut-dup", "2.0"]
    assert mine["book"][1:] == ["odd.book", "blut.cookbooks", "Odd.Name", "3.1"]
    assert mine["eggy"][3:] == ["eggy", "0.1"]
