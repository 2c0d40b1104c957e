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
