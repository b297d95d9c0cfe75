"""Test configuration: the repository root importable as ``tests.*``.

blut's fixtures come from its pytest plugin (``blut_core.testing.plugin``, registered as the
``pytest11`` entry point ``blut`` when blut is installed), so nothing is imported here for
them. Stage functions used by tests live in ``tests/support`` so that stage processes (which
get the driver's ``sys.path`` as ``PYTHONPATH``) can import them by dotted name.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
