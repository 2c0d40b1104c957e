"""The storage protocol, on a local directory and on its in-memory twin."""

from __future__ import annotations

from pathlib import Path

import pytest

from dedupe.storage import ObjectExists, ObjectNotFound, Storage
from dedupe.storage.local import LocalStorage
from dedupe.storage.memory import MemoryStorage


@pytest.fixture(params=["local", "memory"])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Storage:
    return LocalStorage(tmp_path / "s") if request.param == "local" else MemoryStorage()


def test_put_get_range_size(storage: Storage) -> None:
    storage.put("data/ab/abc", b"0123456789")
    assert storage.get("data/ab/abc") == b"0123456789"
    assert storage.get_range("data/ab/abc", 2, 3) == b"234"
    assert storage.get_range("data/ab/abc", 8, 10) == b"89"
    assert storage.size("data/ab/abc") == 10
    assert storage.exists("data/ab/abc")
    storage.put("keys/k", b"old")  # the one object rewritten in place: the key file (change-passphrase)
    storage.put("keys/k", b"new")
    assert storage.get("keys/k") == b"new"


def test_list_is_recursive_and_sized(storage: Storage) -> None:
    storage.put("data/ab/x", b"1")
    storage.put("data/cd/y", b"22")
    storage.put("index/z", b"333")
    assert sorted(storage.list("data")) == [("data/ab/x", 1), ("data/cd/y", 2)]


def test_create_is_conditional(storage: Storage) -> None:
    storage.create("locks/a", b"1")
    with pytest.raises(ObjectExists):
        storage.create("locks/a", b"2")
    assert storage.get("locks/a") == b"1"


def test_missing_and_delete(storage: Storage) -> None:
    with pytest.raises(ObjectNotFound):
        storage.get("nope")
    with pytest.raises(ObjectNotFound):
        storage.size("nope")
    storage.put("a/b", b"x")
    storage.delete("a/b")
    storage.delete("a/b")  # deleting twice is fine
    assert not storage.exists("a/b")


def test_local_writes_leave_no_temp_files(tmp_path: Path) -> None:
    s = LocalStorage(tmp_path)
    s.put("data/ab/x", b"1" * 1000)
    s.create("locks/l", b"2")
    names = [p.name for p in tmp_path.rglob("*") if p.is_file()]
    assert sorted(names) == ["l", "x"]
    assert list(s.temp_files()) == []


def test_local_refuses_escaping_names(tmp_path: Path) -> None:
    from dedupe.storage import StorageError
    s = LocalStorage(tmp_path / "r")
    with pytest.raises(StorageError):
        s.put("../evil", b"x")
    assert not (tmp_path / "evil").exists()


def test_local_ignores_temp_files_in_listings(tmp_path: Path) -> None:
    s = LocalStorage(tmp_path)
    s.put("data/ab/x", b"1")
    (tmp_path / "data" / "ab" / ".y.1234.tmp").write_bytes(b"partial")
    assert list(s.list("data")) == [("data/ab/x", 1)]
    assert list(s.temp_files()) == ["data/ab/.y.1234.tmp"]


def test_put_of_parts_is_their_concatenation(storage: Storage) -> None:
    parts = [b"head", b"", memoryview(b"middle"), bytearray(b"tail")]
    storage.put("data/ab/parts", parts)
    assert storage.get("data/ab/parts") == b"headmiddletail"


def test_local_put_of_parts_survives_short_writes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """writev may write less than asked, ending inside a part: the rest follows."""
    import os

    real = os.writev
    calls = []

    def short(fd: int, buffers: list[memoryview]) -> int:
        calls.append(len(buffers))
        return real(fd, [bytes(b"".join(buffers)[:5])])

    monkeypatch.setattr(os, "writev", short)
    parts = [os.urandom(7) for _ in range(3000)]  # more than one writev's worth of buffers
    LocalStorage(tmp_path / "s").put("data/ab/short", parts)
    assert (tmp_path / "s" / "data/ab/short").read_bytes() == b"".join(parts)
    assert max(calls) <= 1024


def test_local_get_into_reads_the_whole_file_into_the_buffer_or_declines(tmp_path: Path) -> None:
    """``get_into`` (check's reused pack buffers): the whole file, as a view of the start of
    the buffer, whatever the buffer held before; None when the file does not fit with a
    byte to spare (the caller then uses ``get``); a missing file is ObjectNotFound."""
    s = LocalStorage(tmp_path / "s")
    s.put("data/ab/big", b"B" * 100)
    s.put("data/ab/small", b"0123456789")
    buf = bytearray(b"x" * 101)
    got = s.get_into("data/ab/big", buf)
    assert got is not None and got.tobytes() == b"B" * 100
    got = s.get_into("data/ab/small", buf)
    assert got is not None and got.tobytes() == b"0123456789"
    assert s.get_into("data/ab/small", bytearray(10)) is None
    assert s.get_into("data/ab/big", bytearray(50)) is None
    with pytest.raises(ObjectNotFound):
        s.get_into("data/ab/gone", buf)
