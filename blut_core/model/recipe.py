"""Recipes and cookbooks as a cookbook's hooks yield them.

A :class:`Recipe` is a typed factory: an attrs params class and a ``build(params) -> Plan``
function. A cookbook is a plugin: the module its ``blut.cookbooks`` entry point names carries
``@hookimpl`` functions; ``blut_cookbooks`` yields one :class:`CookbookSpec` (its name and
summary) and ``blut_recipes`` yields its :class:`Recipe` records. Recipes are referred to as
``cookbook:recipe``, or by the bare recipe name when unique.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import attrs

from blut_core.model.reprs import record_repr

if TYPE_CHECKING:
    from blut_core.model.plan import Plan

_NAME = re.compile(r"^[a-z][a-z0-9_-]*$")


def _valid_name(_: Any, attribute: attrs.Attribute[str], value: str) -> None:
    if not _NAME.match(value):
        raise ValueError(f"{attribute.name} {value!r} must be lower-case letters, digits, '-' or '_', "
                         "starting with a letter")


@attrs.frozen(kw_only=True)
class CookbookSpec:
    """What a cookbook is called and what it is for (``blut recipes list`` shows both)."""

    __repr__ = record_repr  # attrs' text, not compiled per class

    name: str = attrs.field(validator=_valid_name)
    summary: str


@attrs.frozen(kw_only=True)
class Recipe:
    """A named factory: ``params`` (an attrs class with defaults) → :class:`Plan`.

    ``calendar`` is the default of ``blut schedule install`` for this recipe: ``hourly``,
    ``daily``, ``weekly``, ``monthly``, a systemd ``OnCalendar`` expression (systemd timers)
    or five cron fields (cron); ``--calendar`` overrides it.
    """

    __repr__ = record_repr  # attrs' text, not compiled per class

    name: str = attrs.field(validator=_valid_name)
    summary: str
    params: type[Any]
    build: Callable[[Any], Plan]
    calendar: str | None = None

    def __attrs_post_init__(self) -> None:
        if not attrs.has(self.params):
            raise TypeError(f"recipe {self.name!r}: params must be an attrs class")
