"""Keep the process's memory bounded under glibc.

glibc raises its mmap threshold each time a large block is freed, after which
multi-megabyte buffers (chunks, packs) come from the heap arenas of several
threads and fragment them, so the resident size drifts upward over a long
backup. Fixing the threshold makes every large buffer its own mapping, returned
to the system as soon as it is freed.
"""

from __future__ import annotations

import ctypes
import ctypes.util

M_MMAP_THRESHOLD = -3
M_ARENA_MAX = -8


def bound_malloc(threshold: int = 1 << 20, arenas: int = 2) -> bool:
    """Returns whether glibc accepted the settings (False elsewhere)."""
    name = ctypes.util.find_library("c")
    if not name:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(M_MMAP_THRESHOLD, threshold)) and bool(mallopt(M_ARENA_MAX, arenas))
