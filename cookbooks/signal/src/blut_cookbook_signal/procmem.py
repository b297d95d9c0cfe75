"""This process's memory as the kernel counts it (``/proc/self/status``)."""

from __future__ import annotations


def _status_bytes(field: str) -> int:
    with open("/proc/self/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    return 0


def peak_rss() -> int:
    """The peak resident set of this process so far (``VmHWM``), in bytes; 0 if unknown."""
    try:
        return _status_bytes("VmHWM")
    except OSError:
        return 0


_M_MMAP_THRESHOLD = -3
_steady = False


def steady_heap(threshold: int = 128 * 1024) -> None:
    """Make freed arrays go back to the kernel at once, so the peak follows live memory.

    glibc serves allocations above a threshold with their own mappings (unmapped on free)
    and smaller ones from a heap that shrinks only from its top. By default it *raises*
    that threshold each time a large block is freed (up to 32 MiB), so after a few chunks a
    loop's temporaries land on the heap, and fragmentation makes the peak creep with the
    number of iterations. Fixing the threshold (which also fixes the trim threshold) keeps
    every large temporary in its own mapping: the peak then depends on the sizes a step
    works with, not on how long it ran — what a footprint formula can state.

    It also stops numpy from asking for transparent huge pages for its arrays: where the
    kernel grants them only on request (``madvise``), each first touch of a large array
    then makes it compact memory to find one, which on a busy box costs more than the huge
    page saves (here, about twice the time to fill a GiB). Idempotent; a no-op where
    glibc's ``mallopt`` or numpy's switch is not available.
    """
    global _steady
    if _steady:
        return
    _steady = True
    try:
        import ctypes

        libc = ctypes.CDLL(None)
        libc.mallopt(_M_MMAP_THRESHOLD, int(threshold))
    except (OSError, AttributeError):
        pass
    try:
        from numpy._core.multiarray import _set_madvise_hugepage  # type: ignore[attr-defined]
    except ImportError:
        return
    _set_madvise_hugepage(False)


_BLAS_SETTERS = ("openblas_set_num_threads", "openblas_set_num_threads64_",
                 "scipy_openblas_set_num_threads", "scipy_openblas_set_num_threads64_")


def limit_blas_threads(threads: int = 1) -> int:
    """Ask every OpenBLAS loaded in this process to use ``threads`` threads; how many obeyed.

    Works after numpy is imported (unlike ``OPENBLAS_NUM_THREADS``), by finding the loaded
    library in ``/proc/self/maps``. The matrices here are small enough that one thread per
    stage is faster than two, and stages run side by side: two BLAS threads per stage on a
    shared box spin against each other. ``threads <= 0`` leaves BLAS alone.
    """
    if threads <= 0:
        return 0
    import ctypes

    import numpy  # noqa: F401 - loads the BLAS numpy uses, so it shows in the maps

    try:
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as fh:
            paths = sorted({parts[-1] for parts in (line.split() for line in fh)
                            if len(parts) >= 6 and "blas" in parts[-1].lower() and ".so" in parts[-1]})
    except OSError:
        return 0
    done = 0
    for path in paths:
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for name in _BLAS_SETTERS:
            setter = getattr(lib, name, None)
            if setter is not None:
                setter(int(threads))
                done += 1
                break
    return done
