"""What a stage needed, from its cgroup: the kernel's peak less the page cache it could give back.

The kernel's peak (v1 ``memory.max_usage_in_bytes``, v2 ``memory.peak``) counts the page
cache of every file a stage reads or writes. Cache is reclaimable: under the cap the kernel
drops it rather than kill, so a stage that writes files many times its cap rides its cap
without an OOM kill and reports a peak equal to its cap. Learning that as the stage's need
would raise its cap by the headroom on every run. What a stage needs is what cannot be
reclaimed: anonymous memory, shmem (tmpfs files), kernel memory: its usage less its file
pages (``active_file + inactive_file`` of ``memory.stat``).

Neither cgroup version keeps a peak of that, so two readings are combined:

- **sampled**: while stages run, one daemon thread of the driver reads each live cage's
  usage less its file pages every :data:`INTERVAL` seconds and keeps the highest;
- **settled**: after the stage has ended, the file pages its cgroup still holds were cached
  at its peak too, unless they were written after it; ``peak − file pages left`` is what the
  peak held besides them.

``need = min(peak, max(sampled, peak − file pages left))``: never above the kernel's peak.
It reads low only for a burst of anonymous memory shorter than the interval that is freed
and then filled with new page cache; such a stage may be OOM-killed on its next run, and the
kernel's OOM evidence then escalates its cap as for any other.
"""

from __future__ import annotations

import threading
import time

from blut_plugins.cgroup import files

INTERVAL = 0.05  # seconds between samples of the live cages

#: per cgroup version: the usage file and the ``memory.stat`` keys of reclaimable file pages
_FILES = {1: ("memory.usage_in_bytes", ("total_active_file", "total_inactive_file")),
          2: ("memory.current", ("active_file", "inactive_file"))}


def file_pages(path: str, version: int) -> int | None:
    """Bytes of (reclaimable) file pages charged to the cgroup at ``path`` now."""
    text = files.read_text(f"{path}/memory.stat")
    if not text:
        return None
    text = "\n" + text  # only the lines it needs of its ~40: a stage's end reads it
    found = None
    for key in _FILES[version][1]:
        at = text.find(f"\n{key} ")
        if at < 0:
            continue
        end = text.find("\n", at + 1)
        try:
            value = int(text[at + len(key) + 2:end if end >= 0 else len(text)])
        except ValueError:
            continue
        found = value if found is None else found + value
    return found


def unreclaimable(path: str, version: int) -> int | None:
    """The cgroup's usage now less its file pages: what the kernel cannot take back."""
    usage = files.read_int(f"{path}/{_FILES[version][0]}")
    cached = file_pages(path, version)
    if usage is None or cached is None:
        return None
    return max(0, usage - cached)


def need_bytes(path: str, version: int, peak: int, sampled: int, left: int | None = None) -> int:
    """What the stage in the cgroup at ``path`` needed (see the module docstring); ``left``:
    the file pages it holds now, when already read."""
    if left is None:
        left = file_pages(path, version)
    settled = peak - left if left is not None else peak
    return max(0, min(peak, max(sampled, settled)))


class Watch:
    """The highest unreclaimable usage seen in one cage while it is watched."""

    __slots__ = ("high", "path", "version")

    def __init__(self, path: str, version: int) -> None:
        self.path = path
        self.version = version
        self.high = 0

    def sample(self) -> None:
        value = unreclaimable(self.path, self.version)
        if value is not None and value > self.high:
            self.high = value


class Sampler:
    """One daemon thread sampling every watched cage; it sleeps while none is watched."""

    def __init__(self, interval: float = INTERVAL) -> None:
        self.interval = interval
        self._watches: set[Watch] = set()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    def watch(self, path: str, version: int) -> Watch:
        """Start sampling the cage at ``path``."""
        w = Watch(path, version)
        with self._lock:
            self._watches.add(w)
            if not self._wake.is_set():  # set while any is watched (the loop clears it when none is)
                self._wake.set()
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._loop, name="blut-cage-sampler",
                                                daemon=True)
                self._thread.start()
        return w

    def unwatch(self, w: Watch) -> int:
        """Stop sampling ``w``; the highest value it saw (a stage that ended within one
        interval was never sampled: its settled reading stands)."""
        with self._lock:
            self._watches.discard(w)
        return w.high

    def _loop(self) -> None:
        while True:
            self._wake.wait()
            with self._lock:
                watched = list(self._watches)
                if not watched:
                    self._wake.clear()
                    continue
            for w in watched:
                w.sample()
            time.sleep(self.interval)


#: the driver's one sampler (a thread starts at the first watched cage)
SAMPLER = Sampler()
