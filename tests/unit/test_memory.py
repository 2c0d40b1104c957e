"""dedupe.memory: the malloc threshold a restore raises comes back when the last
restore pipeline ends, and nothing changes where bound_malloc is not in force."""

from __future__ import annotations

import pytest

from dedupe import memory


def test_heap_buffers_nest_and_restore_the_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[int, int]] = []
    trims: list[int] = []
    monkeypatch.setitem(memory._bound, "mallopt", lambda param, value: calls.append((param, value)) or 1)
    monkeypatch.setitem(memory._bound, "trim", lambda pad: trims.append(pad) or 1)
    monkeypatch.setitem(memory._bound, "threshold", 1 << 20)
    monkeypatch.setitem(memory._bound, "raised", [])
    with memory.heap_buffers_up_to(4 << 20):  # the item stream's pipeline
        assert calls == [(memory.M_TRIM_THRESHOLD, memory.KEPT_WHILE_RAISED), (memory.M_MMAP_THRESHOLD, 4 << 20)]
        with memory.heap_buffers_up_to(4 << 20):  # the content's, inside it
            pass
        assert calls[-1] == (memory.M_MMAP_THRESHOLD, 4 << 20)  # still raised: one pipeline runs
        assert (memory.M_TRIM_THRESHOLD, memory.DEFAULT_TRIM) not in calls and trims == []  # free heap still kept
    assert calls[-2:] == [(memory.M_MMAP_THRESHOLD, 1 << 20), (memory.M_TRIM_THRESHOLD, memory.DEFAULT_TRIM)]
    assert trims == [0]  # and what was kept goes back to the system
    assert memory._bound["raised"] == []


def test_heap_buffers_do_nothing_without_bound_malloc(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(memory._bound, "mallopt", None)
    with memory.heap_buffers_up_to(4 << 20):
        assert memory._bound["raised"] == []


def test_libc_is_found_without_its_usual_name(monkeypatch: pytest.MonkeyPatch) -> None:
    """Where loading "libc.so.6" fails, the C library is looked up by find_library
    (here the same file, which the fake lets load the second time)."""
    import ctypes
    import ctypes.util

    real = ctypes.CDLL
    asked: list[str | None] = []

    def cdll(name: str | None, *args: object, **kwargs: object) -> ctypes.CDLL:
        asked.append(name)
        if len(asked) == 1:
            raise OSError("not here")
        return real(name, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(ctypes, "CDLL", cdll)
    libc = memory._libc()
    assert asked == ["libc.so.6", ctypes.util.find_library("c")]
    assert hasattr(libc, "mallopt")


def _vm_flags(buf: object) -> list[str]:
    """The VmFlags of the mapping that holds ``buf`` (from /proc/self/smaps)."""
    import ctypes
    address = ctypes.addressof(ctypes.c_char.from_buffer(buf))  # type: ignore[arg-type]
    current = None
    with open("/proc/self/smaps") as smaps:
        for line in smaps:
            head = line.split()[0]
            if "-" in head and not head.endswith(":"):
                start, end = (int(x, 16) for x in head.split("-"))
                current = start <= address < end
            elif head == "VmFlags:" and current:
                return line.split()[1:]
    raise AssertionError("mapping not found")


def test_new_buffers_are_zeroed_writable_and_ask_for_huge_pages_when_large() -> None:
    import mmap
    large = memory.new_buffer(3 * memory.HUGE_PAGE)
    assert len(large) == 3 * memory.HUGE_PAGE and large[:] == bytes(len(large))
    large[5:8] = b"abc"
    assert large[4:9] == b"\0abc\0"
    if hasattr(mmap, "MADV_HUGEPAGE"):
        assert "hg" in _vm_flags(large)  # MADV_HUGEPAGE took
    small = memory.new_buffer(4096)
    assert "hg" not in _vm_flags(small)


def test_new_buffers_work_where_the_kernel_has_no_huge_pages(monkeypatch: pytest.MonkeyPatch) -> None:
    """madvise(MADV_HUGEPAGE) fails with EINVAL on a kernel built without transparent
    huge pages: the buffer is made all the same, with ordinary pages."""
    import errno
    import mmap

    class NoHugePages(mmap.mmap):
        def madvise(self, *args: object) -> None:  # type: ignore[override]
            raise OSError(errno.EINVAL, "Invalid argument")

    monkeypatch.setattr(mmap, "mmap", NoHugePages)
    buf = memory.new_buffer(2 * memory.HUGE_PAGE)
    assert isinstance(buf, NoHugePages) and len(buf) == 2 * memory.HUGE_PAGE
    buf[:3] = b"abc"
    assert buf[:4] == b"abc\0"
