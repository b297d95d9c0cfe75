"""Every attrs record of blut's own shares ``record_repr`` instead of having attrs compile a
``__repr__`` for it in every process (a third of what building a record class costs; a
one-stage ``blut run`` builds some fifty of them before it starts anything)."""

from __future__ import annotations

import importlib
import pkgutil

import attrs

import blut_core
import blut_plugins


def _modules() -> list[str]:
    names = []
    for package in (blut_core, blut_plugins):
        for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
            if not info.name.endswith(".__main__"):  # runs the CLI when imported
                names.append(info.name)
    return names


def test_every_record_class_uses_the_shared_repr() -> None:
    compiled = []
    for name in _modules():
        try:
            module = importlib.import_module(name)
        except ImportError:  # an optional dependency this machine lacks
            continue
        for obj in vars(module).values():
            if isinstance(obj, type) and attrs.has(obj) and obj.__module__ == name:
                code = getattr(vars(obj).get("__repr__"), "__code__", None)
                if code is not None and code.co_filename.startswith("<attrs generated"):
                    compiled.append(f"{name}.{obj.__qualname__}")
    assert not compiled, f"give these __repr__ = record_repr: {compiled}"
