"""Keep the process's memory bounded under glibc.

glibc raises its mmap threshold each time a large block is freed, after which
multi-megabyte buffers (chunks, packs) come from the heap arenas of several
threads and fragment them, so the resident size drifts upward over a long
backup. Fixing the threshold makes every large buffer its own mapping, returned
to the system as soon as it is freed.

That costs a restore dearly: every chunk it opens is a fresh mapping whose pages
fault in one by one (about a third of a restore's CPU). ``heap_buffers_up_to``
lets chunk-sized buffers come from the heap while a restore pipeline runs, and
keeps what they free there: with a fixed threshold glibc also hands any free
heap top over 128 KiB back to the system at once (and arenas of other threads
likewise), so the next buffer faults its pages in again. A tar backup of 200 MB
took 58,000 page faults with that, 35,000 without (benchmarks/RESULTS.md).
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import mmap
import threading
from collections.abc import Iterator
from typing import Any

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
M_ARENA_MAX = -8
DEFAULT_TRIM = 128 << 10  # glibc's M_TRIM_THRESHOLD once the mmap threshold is fixed
KEPT_WHILE_RAISED = 256 << 20  # free heap kept for reuse while heap buffers are in use

_lock = threading.Lock()
_bound: dict[str, Any] = {"mallopt": None, "trim": None, "threshold": 0, "raised": []}


def _libc() -> ctypes.CDLL:
    """The C library: glibc's usual name first (``find_library`` runs ``ldconfig -p``
    in a subprocess, a fork of the whole process at every start)."""
    try:
        return ctypes.CDLL("libc.so.6")
    except OSError:
        from ctypes import util
        name = util.find_library("c")
        if not name:
            raise
        return ctypes.CDLL(name)


def bound_malloc(threshold: int = 1 << 20, arenas: int = 2) -> bool:
    """Returns whether glibc accepted the settings (False elsewhere)."""
    try:
        libc = _libc()
        mallopt, trim = libc.mallopt, libc.malloc_trim
    except (OSError, AttributeError):
        return False
    ok = bool(mallopt(M_MMAP_THRESHOLD, threshold)) and bool(mallopt(M_ARENA_MAX, arenas))
    if ok:
        with _lock:
            _bound.update(mallopt=mallopt, trim=trim, threshold=threshold, raised=[])
    return ok


GC_YOUNG_THRESHOLD = 50_000  # container allocations between young collections (CPython's default: 700)


def fewer_gc_passes() -> None:
    """Run CPython's cycle collector less often: a backup allocates millions of short-lived
    containers (items, refs, tuples) and next to no cycles, and with the default
    thresholds a run of 200 MB of tar spent about 3% of its CPU (measured:
    benchmarks/RESULTS.md) in collections that found next to nothing. What exists at
    start-up (modules, classes) is moved out of the collector's sight for good."""
    gc.freeze()
    gc.set_threshold(GC_YOUNG_THRESHOLD, 20, 20)


@contextlib.contextmanager
def heap_buffers_up_to(size: int) -> Iterator[None]:
    """While the block runs, buffers of up to ``size`` bytes come from the heap and
    what they free stays there for the next ones, instead of each being a fresh
    mapping; when the last such block ends, the bound threshold comes back and the
    kept memory goes back to the system. Only where ``bound_malloc`` is in force."""
    with _lock:
        mallopt = _bound["mallopt"]
        if mallopt is not None:
            if not _bound["raised"]:
                mallopt(M_TRIM_THRESHOLD, KEPT_WHILE_RAISED)
            _bound["raised"].append(size)
            mallopt(M_MMAP_THRESHOLD, max(_bound["raised"] + [_bound["threshold"]]))
    try:
        yield
    finally:
        with _lock:
            if mallopt is not None and _bound["mallopt"] is mallopt and size in _bound["raised"]:
                _bound["raised"].remove(size)
                mallopt(M_MMAP_THRESHOLD, max(_bound["raised"] + [_bound["threshold"]]))
                if not _bound["raised"]:
                    mallopt(M_TRIM_THRESHOLD, DEFAULT_TRIM)
                    _bound["trim"](0)


HUGE_PAGE = 2 << 20


def new_buffer(size: int) -> mmap.mmap:
    """A zero-filled buffer of its own anonymous mapping, with transparent huge pages
    asked for when it holds some: the pages of a fresh buffer cost a fault each on
    first use, which on a VM costs more than the copy into them (a 200 MB tar backup:
    27,500 page faults with 4 KiB pages, 18,000 with huge ones; benchmarks/RESULTS.md)."""
    buf = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE)
    if size >= HUGE_PAGE and hasattr(mmap, "MADV_HUGEPAGE"):
        try:
            buf.madvise(mmap.MADV_HUGEPAGE)
        except OSError:  # a kernel built without transparent huge pages: 4 KiB pages then
            pass
    return buf
