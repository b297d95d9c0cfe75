"""Lineage: what a run made, from what, with which code, on which machine.

The run directory is the source of truth; lineage sinks keep indexes over it.
:mod:`.model` names the tables and their columns, :mod:`.extract` turns one run directory
into those rows, :mod:`.sinks` reads the sink configuration, :mod:`.diff` compares two
runs. Nothing here imports DuckDB: the DuckDB sink and its queries live in
``blut_plugins``.
"""
