"""A ``blut`` process that skips the interpreter's teardown still ends as Python would: its
exit code, all of its output, its exit functions, and threads that must finish."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.support.cli import blut_env, run_blut

#: ``blut ARGV`` as the console script runs it (``main()`` with no arguments), after PRELUDE
_SCRIPT = """
import sys
{prelude}
sys.argv = ["blut", *{argv!r}]
from blut_core.cli import main
main()
"""


def _blut_after(prelude: str, *argv: str, home: Path, tmp: Path) -> subprocess.CompletedProcess[str]:
    code = _SCRIPT.format(prelude=prelude, argv=list(argv))
    env = {k: v for k, v in blut_env(home, tmp).items() if k != "PYTHONUNBUFFERED"}  # buffered, as usual
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=env, timeout=120)


def test_exit_codes_and_output_are_whole(tmp_path: Path) -> None:
    home = tmp_path / "home"
    ok = run_blut("run", "testbook:diamond", "--json", home=home, tmp=tmp_path)
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["outcome"] == "ok"  # the whole document, flushed
    failed = run_blut("run", "testbook:failing", home=home, tmp=tmp_path)
    assert failed.returncode == 1 and "failed:" in failed.stdout
    bad = run_blut("run", "testbook:diamnod", home=home, tmp=tmp_path)
    assert bad.returncode == 2 and "unknown recipe" in bad.stderr and "Traceback" not in bad.stderr
    listed = run_blut("runs", "list", "--json", home=home, tmp=tmp_path)  # DuckDB: a plain exit
    assert listed.returncode == 0 and len(json.loads(listed.stdout)) == 2


def test_exit_functions_run_and_buffered_output_is_written(tmp_path: Path) -> None:
    mark = tmp_path / "atexit-ran"
    prelude = (f"import atexit, pathlib; atexit.register(pathlib.Path({str(mark)!r}).touch)\n"
               "atexit.register(print, 'said at exit', end='')  # buffered: nobody flushes it")
    done = _blut_after(prelude, "run", "testbook:diamond", home=tmp_path / "home", tmp=tmp_path)
    assert done.returncode == 0, done.stderr
    assert mark.exists()
    assert done.stdout.endswith("said at exit")


def test_a_thread_that_must_finish_is_waited_for(tmp_path: Path) -> None:
    mark = tmp_path / "thread-done"
    prelude = ("import threading, time, pathlib\n"
               f"def late(): time.sleep(0.5); pathlib.Path({str(mark)!r}).write_text('done')\n"
               "threading.Thread(target=late).start()  # not a daemon: Python waits for it")
    done = _blut_after(prelude, "plugins", "list", home=tmp_path / "home", tmp=tmp_path)
    assert done.returncode == 0, done.stderr
    assert mark.read_text() == "done"


def test_a_closed_stdout_is_not_a_crash(tmp_path: Path) -> None:
    home = tmp_path / "home"
    env = blut_env(home, tmp_path)
    from tests.support.cli import blut_argv

    with subprocess.Popen([*blut_argv(), "plugins", "list"], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, env=env) as proc:
        assert proc.stdout is not None and proc.stderr is not None
        proc.stdout.close()  # like `blut plugins list | head -0`
        err = proc.stderr.read().decode()
        code = proc.wait(timeout=120)
    assert "Traceback" not in err
    assert code in (0, 1, 120)  # what Python's own exit gives for a closed pipe


def test_a_profile_of_a_blut_command_is_written(tmp_path: Path) -> None:
    out = tmp_path / "blut.prof"
    env = {**blut_env(tmp_path / "home", tmp_path)}
    done = subprocess.run([sys.executable, "-m", "cProfile", "-o", str(out), "-m", "blut_core",
                           "plugins", "list"], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    import pstats

    assert pstats.Stats(str(out)).total_calls > 0  # cProfile wrote it after blut's main returned


def test_the_garbage_collector_is_back_on_once_start_up_is_over(tmp_path: Path) -> None:
    """The console script turns the cyclic collector off while it imports and loads plugins
    (collections that find nothing); every command then runs with it on again, and with
    start-up's objects frozen out of its way."""
    prelude = ("import atexit, gc\n"
               "atexit.register(lambda: print('gc-on', gc.isenabled(), gc.get_freeze_count() > 0,"
               " flush=True))")
    done = _blut_after(prelude, "runs", "list", home=tmp_path / "home", tmp=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "gc-on True True" in done.stdout
