"""Packs written with O_DIRECT (dedupe.storage.direct), and the fall-back to buffered writes."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from dedupe.storage import direct
from dedupe.storage.local import LocalStorage

O_DIRECT = getattr(os, "O_DIRECT", 0)


def _flags(fd: int) -> int:
    for line in Path(f"/proc/self/fdinfo/{fd}").read_text().splitlines():
        if line.startswith("flags:"):
            return int(line.split()[1], 8)
    raise AssertionError("no flags in fdinfo")


def _supports_direct(path: Path) -> bool:
    probe = path / ".probe"
    try:
        os.close(os.open(probe, os.O_WRONLY | os.O_CREAT | O_DIRECT, 0o600))
    except OSError:
        return False
    probe.unlink()
    return True


@pytest.fixture
def ext_dir(tmp_path: Path) -> Path:
    if not O_DIRECT or not _supports_direct(tmp_path):
        pytest.skip(f"{tmp_path} does not take O_DIRECT")
    return tmp_path


@pytest.mark.parametrize("sizes", [
    [direct.MIN_SIZE],  # whole blocks only: the descriptor is still O_DIRECT
    [direct.MIN_SIZE + 1],  # one byte past a block boundary
    [12, direct.MIN_SIZE, 4095, 0, 77],  # parts of any size, as a pack's header, blobs and table are
])
def test_large_files_are_written_directly_and_read_back_the_same(ext_dir: Path, sizes: list[int]) -> None:
    parts = [os.urandom(n) for n in sizes]
    writer = direct.DirectWriter()
    fd = writer.write_new(ext_dir / "pack", [memoryview(p) for p in parts])
    assert fd is not None
    try:
        if sum(sizes) % direct.ALIGN == 0:
            assert _flags(fd) & O_DIRECT
        else:  # switched off for the last partial block
            assert not _flags(fd) & O_DIRECT
        assert os.stat(ext_dir / "pack").st_mode & 0o777 == 0o600
    finally:
        os.close(fd)
    assert (ext_dir / "pack").read_bytes() == b"".join(parts)


def test_packs_larger_than_the_staging_buffer_go_through_it_in_pieces(ext_dir: Path) -> None:
    """Parts that straddle the staging buffer's end, a part larger than the buffer, and
    the buffer reused for the next pack."""
    writer = direct.DirectWriter()
    for i, sizes in enumerate([[direct.STAGE - 5, 10, direct.STAGE + direct.ALIGN, 1],
                               [3, 2 * direct.STAGE],  # ends exactly at a buffer's end
                               [direct.MIN_SIZE + 7]]):
        parts = [os.urandom(n) for n in sizes]
        fd = writer.write_new(ext_dir / f"p{i}", [memoryview(p) for p in parts])
        assert fd is not None
        os.close(fd)
        assert (ext_dir / f"p{i}").read_bytes() == b"".join(parts)


def test_small_files_are_left_to_the_caller(ext_dir: Path) -> None:
    assert direct.DirectWriter().write_new(ext_dir / "small", [memoryview(b"x" * 100)]) is None
    assert not (ext_dir / "small").exists()


def test_a_file_system_without_o_direct_gets_buffered_writes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A file system that refuses O_DIRECT at open (tmpfs before Linux 6.6, some FUSE
    file systems): the writer steps aside for good and the storage writes the pack."""
    real = os.open
    refused = []

    def no_direct(path: object, flags: int, mode: int = 0o777, **kw: object) -> int:
        if flags & O_DIRECT:
            refused.append(path)
            raise OSError(errno.EINVAL, "Invalid argument")
        return real(path, flags, mode, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "open", no_direct)
    storage = LocalStorage(tmp_path)
    data = os.urandom(direct.MIN_SIZE + 5)
    storage.put("data/ab/pack", [data[:10], data[10:]])
    storage.put("data/ab/pack2", data)
    assert storage.get("data/ab/pack") == data and storage.get("data/ab/pack2") == data
    assert not storage._direct.enabled and len(refused) == 1  # asked once, not per pack
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == ["pack", "pack2"]


def test_refused_direct_writes_fall_back_and_leave_no_file(ext_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A file system that opens with O_DIRECT but refuses the writes (an alignment it
    needs larger than ours): the pack is written buffered instead."""
    real = os.writev

    def refuse_direct(fd: int, buffers: list[memoryview]) -> int:
        if _flags(fd) & O_DIRECT:
            raise OSError(errno.EINVAL, "Invalid argument")
        return real(fd, buffers)

    monkeypatch.setattr(os, "writev", refuse_direct)
    storage = LocalStorage(ext_dir / "repo")
    data = os.urandom(2 * direct.MIN_SIZE)
    storage.put("data/ab/pack", data)
    assert storage.get("data/ab/pack") == data
    assert not storage._direct.enabled
    assert [p.name for p in (ext_dir / "repo").rglob("*") if p.is_file()] == ["pack"]


def test_other_write_errors_are_raised_and_leave_no_file(ext_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from dedupe.storage import StorageError

    def full(fd: int, buffers: list[memoryview]) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "writev", full)
    storage = LocalStorage(ext_dir / "repo")
    with pytest.raises(StorageError, match="No space left"):
        storage.put("data/ab/pack", os.urandom(direct.MIN_SIZE))
    assert storage._direct.enabled
    assert not [p for p in (ext_dir / "repo").rglob("*") if p.is_file()]


def test_a_file_streamed_in_pieces_is_the_same_as_written_whole(ext_dir: Path) -> None:
    """A pack written while it is built: pieces of any size, straddling the staging
    buffer's end, one larger than it, and a last partial block."""
    parts = [os.urandom(n) for n in (8, direct.STAGE - 3, 100, 2 * direct.STAGE + 5, 4096, 1)]
    stream = direct.DirectWriter().open_new(ext_dir / "pack")
    assert stream is not None
    for p in parts:
        stream.write([memoryview(p)])
    os.close(stream.end())
    assert (ext_dir / "pack").read_bytes() == b"".join(parts)


def test_direct_writes_refused_midway_go_on_buffered_from_the_same_offset(ext_dir: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    real = os.writev
    calls = []

    def refuse_second(fd: int, buffers: list[memoryview]) -> int:
        calls.append(fd)
        if _flags(fd) & O_DIRECT and len(calls) > 1:
            raise OSError(errno.EINVAL, "Invalid argument")
        return real(fd, buffers)

    monkeypatch.setattr(os, "writev", refuse_second)
    writer = direct.DirectWriter()
    stream = writer.open_new(ext_dir / "pack")
    assert stream is not None
    parts = [os.urandom(direct.STAGE + 100), os.urandom(direct.STAGE)]
    for p in parts:
        stream.write([memoryview(p)])
    os.close(stream.end())
    assert (ext_dir / "pack").read_bytes() == b"".join(parts)
    assert not writer.enabled


@pytest.mark.parametrize("direct_ok", [True, False])
def test_a_local_storage_writer_stores_the_parts_under_the_name_given_last(tmp_path: Path, direct_ok: bool) -> None:
    storage = LocalStorage(tmp_path / "repo")
    if not direct_ok:
        storage._direct.enabled = False
    parts = [os.urandom(n) for n in (12, direct.MIN_SIZE, 77)]
    out = storage.writer("data")
    for p in parts:
        out.write([p])
    assert list(storage.temp_files()) and not list(storage.list("data"))  # not there before finish
    out.finish("data/ab/abcdef")
    assert storage.get("data/ab/abcdef") == b"".join(parts)
    assert not list(storage.temp_files())
    dropped = storage.writer("data")
    dropped.write([b"x" * 10])
    dropped.abort()
    assert not list(storage.temp_files()) and [n for n, _ in storage.list("data")] == ["data/ab/abcdef"]
