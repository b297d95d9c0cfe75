"""Where blut was installed from: ``--version`` with the commit, and the stale-install warning."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from importlib import metadata as md
from pathlib import Path
from urllib.parse import quote

import pytest

from blut_core import App, __version__
from blut_core.cli import main
from blut_core.host import installinfo

needs_git = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")

#: An mtime well in the past: METADATA is "installed" then, unless a test says otherwise.
INSTALLED = 1_700_000_000.0


def _checkout(root: Path) -> Path:
    """A directory that looks like a git checkout: ``.git/HEAD`` → a branch ref, pyproject."""
    src = root / "checkout"
    (src / ".git" / "refs" / "heads").mkdir(parents=True)
    (src / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    (src / ".git" / "refs" / "heads" / "main").write_text("0" * 40 + "\n")
    (src / "pyproject.toml").write_text("[project]\nname = 'blut'\n")
    _touch(src / ".git" / "HEAD", src / ".git" / "refs" / "heads" / "main",
           src / "pyproject.toml", at=INSTALLED)
    return src


def _dist_info(root: Path, src: Path, *, editable: bool, url: str | None = None) -> Path:
    """A ``blut-VERSION.dist-info`` whose ``direct_url.json`` points at ``src``."""
    info = root / "site" / f"blut-{__version__}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: blut\nVersion: {__version__}\n")
    direct: dict[str, object] = {"url": url or f"file://{quote(str(src))}"}
    if editable:
        direct["dir_info"] = {"editable": True}
    (info / "direct_url.json").write_text(json.dumps(direct))
    _touch(info / "METADATA", at=INSTALLED)
    return info


def _touch(*paths: Path, at: float) -> None:
    for p in paths:
        os.utime(p, (at, at))


def _install(monkeypatch: pytest.MonkeyPatch, info: Path | None) -> None:
    dist = None if info is None else md.PathDistribution(info)
    monkeypatch.setattr(installinfo, "_dist", lambda: dist)


# -- the stale-install warning --------------------------------------------------------------


@pytest.mark.parametrize("editable", [True, False])
def test_fresh_install_has_no_warning(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                      editable: bool) -> None:
    src = _checkout(tmp_path)
    _install(monkeypatch, _dist_info(tmp_path, src, editable=editable))
    assert installinfo.source_checkout() == (src, editable)
    assert installinfo.stale_warning() is None


def test_editable_install_is_stale_when_pyproject_changed(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    src = _checkout(tmp_path)
    _install(monkeypatch, _dist_info(tmp_path, src, editable=True))
    _touch(src / "pyproject.toml", at=INSTALLED + 60)
    warning = installinfo.stale_warning()
    assert warning == (f"warning: {src / 'pyproject.toml'} changed after blut was installed "
                       f"(plugins or dependencies may be missing); run: pip install -e {src}")
    assert "\n" not in warning


def test_editable_install_ignores_new_commits(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """Editable code is the checkout itself: only a changed pyproject needs a reinstall."""
    src = _checkout(tmp_path)
    _install(monkeypatch, _dist_info(tmp_path, src, editable=True))
    _touch(src / ".git" / "HEAD", src / ".git" / "refs" / "heads" / "main", at=INSTALLED + 60)
    assert installinfo.stale_warning() is None


@pytest.mark.parametrize("moved", ["HEAD", "refs/heads/main"])
def test_regular_install_is_stale_when_the_checkout_moved_on(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, moved: str) -> None:
    src = _checkout(tmp_path)
    _install(monkeypatch, _dist_info(tmp_path, src, editable=False))
    _touch(src / ".git" / moved, at=INSTALLED + 60)
    assert installinfo.stale_warning() == (
        f"warning: the installed blut is older than its checkout {src}; run: pip install {src}")


def test_a_second_of_clock_skew_is_not_stale(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    src = _checkout(tmp_path)
    _install(monkeypatch, _dist_info(tmp_path, src, editable=False))
    _touch(src / ".git" / "refs" / "heads" / "main", at=INSTALLED + 0.5)
    assert installinfo.stale_warning() is None


def test_checkout_path_with_spaces(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src = _checkout(tmp_path / "my projects")
    _install(monkeypatch, _dist_info(tmp_path, src, editable=True))
    assert installinfo.source_checkout() == (src, True)
    _touch(src / "pyproject.toml", at=INSTALLED + 60)
    assert f"pip install -e {src}" in (installinfo.stale_warning() or "")


@pytest.mark.parametrize("case", ["not-a-file-url", "no-git", "no-direct-url", "not-installed",
                                  "bad-json"])
def test_no_warning_without_a_local_git_checkout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                 case: str) -> None:
    src = _checkout(tmp_path)
    info = _dist_info(tmp_path, src, editable=False,
                      url="https://example.org/blut-0.1.0.tar.gz" if case == "not-a-file-url" else None)
    if case == "no-git":
        shutil.rmtree(src / ".git")
    elif case == "no-direct-url":
        (info / "direct_url.json").unlink()
    elif case == "bad-json":
        (info / "direct_url.json").write_text("{not json")
    _touch(src / "pyproject.toml", at=INSTALLED + 60)
    _install(monkeypatch, None if case == "not-installed" else info)
    assert installinfo.source_checkout() is None
    assert installinfo.stale_warning() is None


# -- at start-up ------------------------------------------------------------------------------


def _stale(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    src = _checkout(tmp_path)
    _install(monkeypatch, _dist_info(tmp_path, src, editable=True))
    _touch(src / "pyproject.toml", at=INSTALLED + 60)
    return src


def test_cli_warns_once_on_stderr_at_start_up(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                              app: App, capsys: pytest.CaptureFixture[str]) -> None:
    src = _stale(tmp_path, monkeypatch)
    monkeypatch.delenv("BLUT_NO_STALE_CHECK", raising=False)
    with pytest.raises(SystemExit) as exit_info:
        main(["recipes", "list", "--json"], app=app)
    assert exit_info.value.code == 0
    out, err = capsys.readouterr()
    lines = err.splitlines()
    assert lines[0] == (f"blut: warning: {src / 'pyproject.toml'} changed after blut was "
                        f"installed (plugins or dependencies may be missing); "
                        f"run: pip install -e {src}")
    assert err.count("blut: warning:") == 1
    assert "warning" not in out
    json.loads(out)  # stdout stays clean JSON


def test_cli_skips_the_check_with_blut_no_stale_check(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, app: App,
        capsys: pytest.CaptureFixture[str]) -> None:
    _stale(tmp_path, monkeypatch)
    monkeypatch.setenv("BLUT_NO_STALE_CHECK", "1")
    with pytest.raises(SystemExit) as exit_info:
        main(["recipes", "list"], app=app)
    assert exit_info.value.code == 0
    assert "warning" not in capsys.readouterr().err


# -- --version ----------------------------------------------------------------------------------


def _git(src: Path, *args: str) -> str:
    done = subprocess.run(["git", "-C", str(src), "-c", "user.name=blut", "-c",
                           "user.email=blut@example.org", "-c", "commit.gpgsign=false", *args],
                          capture_output=True, text=True, check=True)
    return done.stdout.strip()


@pytest.fixture
def git_checkout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A real git repository with one commit, installed editable."""
    src = tmp_path / "repo"
    src.mkdir()
    _git(src, "init", "-q")
    (src / "pyproject.toml").write_text("[project]\nname = 'blut'\n")
    _git(src, "add", "pyproject.toml")
    _git(src, "commit", "-q", "-m", "first")
    _install(monkeypatch, _dist_info(tmp_path, src, editable=True))
    return src


@needs_git
def test_version_names_the_commit(git_checkout: Path) -> None:
    head = _git(git_checkout, "rev-parse", "HEAD")
    version = installinfo.describe_version()
    found = re.fullmatch(rf"{re.escape(__version__)}\+([0-9a-f]{{10,}})", version)
    assert found, version
    assert head.startswith(found.group(1))


@needs_git
def test_version_says_dirty_when_tracked_files_changed(git_checkout: Path) -> None:
    (git_checkout / "untracked.txt").write_text("not part of the checkout's state\n")
    assert not installinfo.describe_version().endswith("-dirty")
    (git_checkout / "pyproject.toml").write_text("[project]\nname = 'changed'\n")
    assert re.fullmatch(rf"{re.escape(__version__)}\+[0-9a-f]{{10,}}-dirty",
                        installinfo.describe_version())


@needs_git
def test_version_flag_prints_it(git_checkout: Path, app: App,
                                capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"], app=app)
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert re.fullmatch(rf"blut {re.escape(__version__)}\+[0-9a-f]{{10,}}\n", out), out


def test_version_without_a_checkout_is_the_plain_version(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src = _checkout(tmp_path)
    info = _dist_info(tmp_path, src, editable=False, url="https://example.org/blut.tar.gz")
    _install(monkeypatch, info)
    monkeypatch.setattr(installinfo, "__file__", str(tmp_path / "site" / "blut_core" / "x.py"))
    assert installinfo.describe_version() == __version__


def test_version_loads_no_plugin_and_imports_neither_click_nor_metadata(tmp_path: Path) -> None:
    """``blut --version`` is the start-up of every script that checks blut: it answers before
    the plugin manager, click or importlib.metadata (~20 ms of email and zipfile) load."""
    import sys

    code = ("import sys\nfrom blut_core.cli import main\ntry:\n    main(['--version'])\n"
            "except SystemExit as exc:\n    assert exc.code == 0\n"
            "print(sorted(m for m in ('click', 'pluggy', 'importlib.metadata', 'blut_core.host.manager',"
            " 'blut_plugins') if m in sys.modules), file=sys.stderr)")
    for check in ("1", "0"):  # with and without the stale-install check
        env = {**os.environ, "BLUT_HOME": str(tmp_path), "BLUT_NO_STALE_CHECK": check}
        r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
        assert r.returncode == 0, r.stderr
        assert r.stdout.startswith(f"blut {__version__}")
        assert r.stderr.strip().splitlines()[-1] == "[]", r.stderr


def test_the_installed_distribution_is_the_one_importlib_metadata_finds() -> None:
    found = installinfo._dist()
    try:
        expected = md.distribution(installinfo.DISTRIBUTION)
    except md.PackageNotFoundError:
        assert found is None
        return
    assert found is not None
    assert Path(found._path) == Path(getattr(expected, "_path"))  # noqa: B009
    assert found.read_text("METADATA") == expected.read_text("METADATA")
