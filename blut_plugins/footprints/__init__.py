"""Built-in footprint models: ``fixed`` (:mod:`.fixed`) and ``scaling`` (:mod:`.scaling`).

Each module is its own entry point (``footprint-fixed``, ``footprint-scaling``).
"""
