"""cgroup v1 and v2 containment: each stage attempt in a memory cgroup of its own.

Two entry points, ``containment-cgroup-v2`` (:mod:`.v2`) and ``containment-cgroup-v1``
(:mod:`.v1`), share the cage (:mod:`.cage`: create, cap, join, read the kernel's peak and OOM
counters, kill, remove) and the control-file helpers (:mod:`.files`). Built on
:mod:`blut_core` and :mod:`blut_core.broker` only.
"""
