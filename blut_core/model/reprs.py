"""One ``__repr__`` for blut's records, the text attrs would generate, without generating it.

attrs compiles a ``__repr__`` for every class it makes (an f-string per field): about a third
of what building a record class costs, and every ``blut run`` builds dozens of them before
it starts a stage. A record that says ``__repr__ = record_repr`` in its body gets this one
function instead (attrs leaves a ``__repr__`` the class defines alone): the same
``Name(field=value, ...)`` text, honouring ``field(repr=False)`` and ``field(repr=callable)``,
and ``...`` for a record met again inside itself.
"""

from __future__ import annotations

import threading
from typing import Any

import attrs

_SEEN = threading.local()


def record_repr(self: Any) -> str:
    """``Name(a=1, b='x')``, as attrs' generated ``__repr__`` writes it."""
    seen: set[int] | None = getattr(_SEEN, "ids", None)
    if seen is None:
        seen = _SEEN.ids = set()
    if id(self) in seen:
        return "..."
    seen.add(id(self))
    try:
        parts = []
        for a in type(self).__attrs_attrs__:
            if a.repr is False:
                continue
            value = getattr(self, a.name) if a.init else getattr(self, a.name, attrs.NOTHING)
            parts.append(f"{a.name}={value!r}" if a.repr is True else f"{a.name}={a.repr(value)}")
        return f"{type(self).__qualname__.rsplit('>.', 1)[-1]}({', '.join(parts)})"
    finally:
        seen.discard(id(self))
