"""A griffe extension for the docs site: blut's docstrings use Sphinx roles, Markdown does not.

``:class:`~blut_core.model.plan.Plan``` becomes ```Plan```, ``:meth:`of``` becomes ```of```
(the rest of a docstring's reST, ``double backticks``, is already Markdown). mkdocs.yml
loads it for mkdocstrings (``extensions: [tools/griffe_roles.py]``).
"""

from __future__ import annotations

import re
from typing import Any

import griffe

_ROLE = re.compile(r":(?:py:)?(?:class|meth|func|mod|attr|data|exc|obj|const|type):`(~?)([^`]+)`")


def _name(match: re.Match[str]) -> str:
    tilde, target = match.groups()
    return f"`{target.rsplit('.', 1)[-1] if tilde else target}`"


def plain(text: str) -> str:
    """``text`` with every Sphinx cross-reference role turned into a code span."""
    return _ROLE.sub(_name, text)


class SphinxRoles(griffe.Extension):
    """Rewrites the roles of every docstring griffe loads."""

    def on_object(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = plain(obj.docstring.value)
