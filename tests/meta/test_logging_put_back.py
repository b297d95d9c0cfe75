"""A test that sets blut's logging up for itself leaves no trace for the tests after it.

The two tests below run in file order: the first switches blut's logging to JSON on its
captured stderr and logs; the second (which would have got JSON to a capture that has ended)
finds blut's logging as a fresh process has it.
"""

from __future__ import annotations

import pytest

from blut_core.host import log


def test_a_test_switches_blut_logging_to_json_on_its_own_stderr(
        capsys: pytest.CaptureFixture[str]) -> None:
    log.configure_logging(level="info", fmt="json")
    log.get_logger().warning("probe_event", n=1)
    assert '"event": "probe_event"' in capsys.readouterr().err


def test_the_next_test_finds_blut_logging_as_it_was() -> None:
    assert (log._state["level"], log._state["fmt"]) == ("warning", "auto")
    assert log._state["configured"] is False  # the next line is set up for today's stderr
