"""Lazy re-exports: a package's public names load their module on first use.

A facade (``blut_core``, ``blut_core.store`` …) lists ``name -> module`` once; importing the
facade costs nothing, so ``blut --help`` and a stage process pay only for what they touch.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from typing import Any


def exports(package: str, where: Mapping[str, str]) -> tuple[Callable[[str], Any], list[str]]:
    """``(__getattr__, __all__)`` for ``package``, whose ``where`` maps names to submodules."""

    def __getattr__(name: str) -> Any:
        module = where.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"blut_core.{module}"), name)
        sys.modules[package].__dict__[name] = value
        return value

    return __getattr__, sorted(where)
