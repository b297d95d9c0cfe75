"""The built-in command groups: one module per group, each its own entry point (``cli-*``).

The commands that read the DuckDB lineage index (``runs``, ``lineage``, ``artifacts``,
``cache``) live with that index in :mod:`blut_plugins.duckdb`. Private helpers start with
``_``.
"""
