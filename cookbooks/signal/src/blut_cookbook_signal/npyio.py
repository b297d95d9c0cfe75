"""Signals on disk: ``.npy`` files of shape ``(samples, channels)``, float32, C order.

Time runs along the rows, so a window of consecutive samples over all channels is one
contiguous byte range of the file. :class:`NpyChunkWriter` writes such a file chunk by chunk
(the header first, then the rows, then an atomic rename), so a signal never has to fit in
memory; the result is an ordinary ``.npy`` that ``np.load(path, mmap_mode="r")`` maps.

:class:`SignalReader` reads row ranges into a buffer the caller owns, with ``pread`` rather
than through a memory map: pages of a mapped file count in the reader's resident set for as
long as the mapping lives, so a pass over a mapped file would grow the process with the file.
It asks for no read-ahead (``POSIX_FADV_RANDOM``: the kernel would otherwise read up to
the device's read-ahead size, megabytes, beyond each range into the cache, charged to the
reader's memory cgroup), and after each read it tells the kernel it will not need those
pages again (``POSIX_FADV_DONTNEED``), so a pass over a large file does not fill the page
cache either.
What a stage holds is then what it allocated, which is what its footprint declares.
"""

from __future__ import annotations

import os
from pathlib import Path
from types import TracebackType
from typing import Protocol

import numpy as np
import numpy.typing as npt

F32 = npt.NDArray[np.float32]
DTYPE = np.dtype("<f4")


class RowSource(Protocol):
    """Anything rows of a ``(samples, channels)`` float32 signal can be read from."""

    @property
    def rows(self) -> int:
        """Number of samples (rows)."""
        ...

    @property
    def channels(self) -> int:
        """Number of channels (columns)."""
        ...

    def read(self, start: int, count: int, out: F32 | None = None) -> F32:
        """Rows ``[start, start + count)`` as a ``(count, channels)`` float32 array.

        With ``out`` (C-contiguous, at least ``count`` rows), the rows are written into it
        and a view of its first ``count`` rows is returned.
        """
        ...


class NpyChunkWriter:
    """Write a ``(rows, channels)`` float32 ``.npy`` file in chunks of rows.

    The file appears at ``path`` only when exactly ``rows`` rows were written and the writer
    is closed without an error; until then it is ``path`` + ``.partial``.
    """

    def __init__(self, path: str | os.PathLike[str], rows: int, channels: int) -> None:
        if rows < 1 or channels < 1:
            raise ValueError(f"a signal needs rows and channels >= 1, got {rows} x {channels}")
        self.path = Path(path)
        self.rows = rows
        self.channels = channels
        self.written = 0
        self._tmp = self.path.with_name(self.path.name + ".partial")
        self._fh = open(self._tmp, "wb")  # noqa: SIM115 - closed in close()
        header = {"descr": np.lib.format.dtype_to_descr(DTYPE), "fortran_order": False,
                  "shape": (rows, channels)}
        np.lib.format.write_array_header_1_0(self._fh, header)

    def write(self, chunk: npt.NDArray[np.floating]) -> None:
        """Append ``chunk`` (``(n, channels)``); it is converted to little-endian float32."""
        if chunk.ndim != 2 or chunk.shape[1] != self.channels:
            raise ValueError(f"chunk of shape {chunk.shape} does not have {self.channels} columns")
        if self.written + chunk.shape[0] > self.rows:
            raise ValueError(f"{self.written + chunk.shape[0]} rows written, the file has {self.rows}")
        data = np.ascontiguousarray(chunk, dtype=DTYPE)
        self._fh.write(data.data.cast("B"))
        self.written += chunk.shape[0]

    def close(self) -> None:
        """Finish the file: check the row count, rename it into place."""
        if self._fh.closed:
            return
        self._fh.close()
        if self.written != self.rows:
            self._tmp.unlink(missing_ok=True)
            raise ValueError(f"{self.written} of {self.rows} rows written to {self.path}")
        os.replace(self._tmp, self.path)

    def abort(self) -> None:
        """Drop the partial file."""
        if not self._fh.closed:
            self._fh.close()
        self._tmp.unlink(missing_ok=True)

    def __enter__(self) -> NpyChunkWriter:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def npy_layout(path: str | os.PathLike[str]) -> tuple[int, tuple[int, int]]:
    """(byte offset of the data, shape) of a 2-D little-endian float32 C-order ``.npy``."""
    with open(path, "rb") as fh:
        version = np.lib.format.read_magic(fh)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(fh)
        else:
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(fh)
        offset = fh.tell()
    if dtype != DTYPE or fortran or len(shape) != 2:
        raise ValueError(f"{path}: expected a 2-D C-order float32 array, got {dtype} {shape}"
                         f"{' (Fortran order)' if fortran else ''}")
    return offset, (int(shape[0]), int(shape[1]))


class SignalReader:
    """Read row ranges of a signal ``.npy`` with ``pread``, leaving no pages mapped or cached."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.offset, (self._rows, self._channels) = npy_layout(path)
        self.row_bytes = self._channels * DTYPE.itemsize
        self._fd = os.open(self.path, os.O_RDONLY)
        os.posix_fadvise(self._fd, 0, 0, os.POSIX_FADV_RANDOM)  # no read-ahead into the cache

    @property
    def rows(self) -> int:
        """Number of samples (rows)."""
        return self._rows

    @property
    def channels(self) -> int:
        """Number of channels (columns)."""
        return self._channels

    def read(self, start: int, count: int, out: F32 | None = None) -> F32:
        """Rows ``[start, start + count)``; see :meth:`RowSource.read`."""
        if start < 0 or count < 0 or start + count > self._rows:
            raise IndexError(f"rows [{start}, {start + count}) outside [0, {self._rows})")
        if out is None:
            out = np.empty((count, self._channels), dtype=np.float32)
        elif out.shape[0] < count or out.shape[1:] != (self._channels,) or not out.flags.c_contiguous:
            raise ValueError(f"buffer of shape {out.shape} cannot hold {count} rows")
        view = out[:count]
        want = count * self.row_bytes
        where = self.offset + start * self.row_bytes
        buf = view.data.cast("B")
        done = 0
        while done < want:
            n = os.preadv(self._fd, [buf[done:]], where + done)
            if n <= 0:
                raise OSError(f"{self.path}: short read at byte {where + done}")
            done += n
        if want:
            os.posix_fadvise(self._fd, where, want, os.POSIX_FADV_DONTNEED)
        return view

    def close(self) -> None:
        """Close the file."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> SignalReader:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


class ArraySource:
    """A :class:`RowSource` over an in-memory ``(samples, channels)`` array."""

    def __init__(self, data: npt.NDArray[np.floating]) -> None:
        if data.ndim != 2:
            raise ValueError(f"expected a (samples, channels) array, got shape {data.shape}")
        self.data = data

    @property
    def rows(self) -> int:
        """Number of samples (rows)."""
        return int(self.data.shape[0])

    @property
    def channels(self) -> int:
        """Number of channels (columns)."""
        return int(self.data.shape[1])

    def read(self, start: int, count: int, out: F32 | None = None) -> F32:
        """Rows ``[start, start + count)``; see :meth:`RowSource.read`."""
        if start < 0 or count < 0 or start + count > self.rows:
            raise IndexError(f"rows [{start}, {start + count}) outside [0, {self.rows})")
        rows = self.data[start:start + count]
        if out is None:
            return np.array(rows, dtype=np.float32)
        view = out[:count]
        view[...] = rows
        return view
