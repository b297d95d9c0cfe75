"""The built-in command groups: one module per group, each its own entry point (``cli-*``).

The commands that read the DuckDB lineage index (``runs``, ``lineage``, ``artifacts``,
``cache``) live with that index in :mod:`blut_plugins.duckdb`. Private helpers start with
``_``; so do the modules that define the commands other than ``run``: the entry point's
module registers its command with ``lazy_command``, and the ``_``-module is imported only when
that command is used (``blut run`` imports none of them).
"""
