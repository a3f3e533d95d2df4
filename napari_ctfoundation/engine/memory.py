"""Give memory freed between slabs back to the operating system.

Slab-by-slab work frees its buffers after every slab, but glibc keeps freed
blocks below its mmap threshold (which grows up to 32 MiB after large frees)
in the heap, where fragmentation turns them into resident memory that grows
with the number of slabs. ``malloc_trim(0)`` after a slab hands the free
pages back, so peak memory stays the input, the output and one slab. A
no-op where the C library is not glibc (macOS, Windows, musl).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import sys


@functools.lru_cache(maxsize=1)
def _malloc_trim():
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return libc.malloc_trim
    except (OSError, AttributeError):
        return None


def release_freed_memory() -> None:
    """Return the C heap's free pages to the OS (glibc ``malloc_trim``); cheap, safe to call often."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)
