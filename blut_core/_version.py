"""The version of the ``blut`` distribution (single source; hatch reads it)."""

__version__ = "0.1.0"
