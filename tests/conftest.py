"""Test configuration: the repository root importable as ``tests.*``.

blut's fixtures come from its pytest plugin (``blut_core.testing.plugin``, registered as the
``pytest11`` entry point ``blut`` when blut is installed), so nothing is imported here for
them. Stage functions used by tests live in ``tests/support`` so that stage processes (which
get the driver's ``sys.path`` as ``PYTHONPATH``) can import them by dotted name.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


@pytest.fixture(autouse=True)
def _blut_logging_put_back() -> Iterator[None]:
    """A test that calls ``configure_logging`` (JSON warnings to its captured stderr) leaves
    blut's logging as it found it: the next log line is configured afresh, to the stderr of
    its own time, instead of in JSON to a capture that has ended."""
    from blut_core.host import log

    before = dict(log._state)
    yield
    if log._state["level"] != before["level"] or log._state["fmt"] != before["fmt"]:
        log.configure_logging(level=before["level"], fmt=before["fmt"])
