"""Read backups back: item streams, chunks in order, whole streams verified.

Chunks are fetched in batches (neighbouring blobs of one pack in one ranged
read), opened and verified on worker threads, and handed out in order; memory is
bounded by the number of batches in flight.
"""

from __future__ import annotations

import os
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, BinaryIO, Callable, Iterable, Iterator, TypeVar

from dedupe.errors import DedupeError
from dedupe.progress import Progress, ProgressCallback
from dedupe.repository import Location, Repository
from repo_format import items, manifest
from repo_format.ids import stream_hash

MAX_BATCH_SPAN = 8 << 20  # stored bytes one ranged read may cover
MAX_BATCH_RAW = 12 << 20  # plaintext one batch may decompress to (bounds memory)
MAX_GAP = 1 << 20
BATCHES_IN_FLIGHT = 4


class RestoreMismatch(DedupeError):
    """The rebuilt data does not match what the manifest recorded."""

    exit_code = 23


class WrongBackupKind(DedupeError):
    exit_code = 32


Batch = tuple[str, int, int, list[tuple[bytes, Location]]]
T = TypeVar("T")


def _batches(repo: Repository, refs: Iterable[tuple[bytes, int]]) -> Iterator[Batch]:
    cur: list[tuple[bytes, Location]] = []
    pack, start, end, raw = "", 0, 0, 0
    for cid, _n in refs:
        loc = repo.locate(cid)
        if cur and loc.pack == pack and start <= loc.offset <= end + MAX_GAP \
                and max(end, loc.offset + loc.length) - start <= MAX_BATCH_SPAN and raw + loc.raw_len <= MAX_BATCH_RAW:
            cur.append((cid, loc))
            end = max(end, loc.offset + loc.length)
            raw += loc.raw_len
            continue
        if cur:
            yield pack, start, end, cur
        cur, pack, start, end, raw = [(cid, loc)], loc.pack, loc.offset, loc.offset + loc.length, loc.raw_len
    if cur:
        yield pack, start, end, cur


def _read_batch(repo: Repository, batch: Batch) -> list[bytes]:
    pack, start, end, members = batch
    data = memoryview(repo.read_pack_range(pack, start, end - start))
    out = []
    opened: dict[bytes, bytes] = {}
    for cid, loc in members:
        chunk = opened.get(cid)
        if chunk is None:
            chunk = opened[cid] = repo.open_chunk(cid, data[loc.offset - start:loc.offset - start + loc.length], pack)
        out.append(chunk)
    return out


def map_batches(read: Callable[[Batch], list[T]], batches: Iterable[Batch], workers: int | None = None) -> Iterator[T]:
    """``read(batch)`` on worker threads, at most BATCHES_IN_FLIGHT ahead; results in order."""
    workers = workers or max(1, min(4, os.cpu_count() or 1))
    queue: deque[Future[list[T]]] = deque()
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="restore") as pool:
        try:
            for batch in batches:
                queue.append(pool.submit(read, batch))
                while len(queue) >= BATCHES_IN_FLIGHT:
                    yield from queue.popleft().result()
            while queue:
                yield from queue.popleft().result()
        finally:
            for fut in queue:
                fut.cancel()


def read_chunks(repo: Repository, refs: Iterable[tuple[bytes, int]], workers: int | None = None) -> Iterator[bytes]:
    """The plaintext of each ref, in order, each verified against its id."""
    return map_batches(lambda batch: _read_batch(repo, batch), _batches(repo, refs), workers)


def iter_items(repo: Repository, m: manifest.Manifest, what: str = "backup") -> Iterator[dict[str, Any]]:
    return items.decode_items(read_chunks(repo, m.items), what)


def _refs_of(item_stream: Iterable[dict[str, Any]]) -> Iterator[tuple[bytes, int]]:
    for item in item_stream:
        for cid, n in items.chunk_refs(item):
            yield cid, n


def iter_stream_pieces(repo: Repository, m: manifest.Manifest) -> Iterator[bytes | memoryview]:
    """The original bytes of a stream or tar backup, in order (section 9.2)."""
    if m.kind == manifest.KIND_STREAM:
        yield from read_chunks(repo, _refs_of(iter_items(repo, m)))
    elif m.kind == manifest.KIND_TAR:
        yield from _tar_pieces(repo, m)
    else:
        raise WrongBackupKind(f"backup of kind {m.kind!r} has no stream; use --to-dir, or --to-file for a tar of it")


def _tar_pieces(repo: Repository, m: manifest.Manifest) -> Iterator[bytes | memoryview]:
    """Header, data and padding of each member, then the tail. The item stream is
    read twice in step (once for headers, once for the chunk refs) so that chunk
    reads can run ahead of the writer."""
    layout_items = iter_items(repo, m)
    chunks = read_chunks(repo, _refs_of(iter_items(repo, m)))
    for item in layout_items:
        if item["k"] == items.ITEM_TAR_MEMBER:
            yield item["h"]
            for _ in item["e"].get("c", []):
                yield next(chunks)
            if "pad" in item:
                yield item["pad"]
            elif item.get("pl"):
                yield bytes(item["pl"])
        elif item["k"] == items.ITEM_TAR_TAIL:
            for _ in item["c"]:
                yield next(chunks)


def write_stream(repo: Repository, m: manifest.Manifest, out: BinaryIO, backup_id: str,
                 progress: ProgressCallback | None = None) -> int:
    """Write the original stream to ``out`` and verify its size and BLAKE3."""
    hasher = stream_hash()
    written = 0
    for piece in iter_stream_pieces(repo, m):
        out.write(piece)
        hasher.update(piece)
        written += len(piece)
        if progress is not None:
            progress(Progress("restore", backup_id[:12], written, m.size))
    if written != m.size:
        raise RestoreMismatch(f"backup {backup_id[:12]}: rebuilt {written} bytes, manifest says {m.size}")
    if m.stream_b3 is not None and hasher.digest() != m.stream_b3:
        raise RestoreMismatch(f"backup {backup_id[:12]}: rebuilt stream's BLAKE3 does not match the manifest")
    return written


def restore_to_file(repo: Repository, m: manifest.Manifest, path: Path, backup_id: str,
                    progress: ProgressCallback | None = None,
                    writer: Callable[[Repository, manifest.Manifest, BinaryIO, str, ProgressCallback | None], int]
                    = write_stream) -> int:
    """Write to ``path`` through a temporary name; on any failure nothing is left behind."""
    tmp = path.with_name(f".{path.name}.dedupe-partial")
    try:
        with open(tmp, "wb") as f:
            n = writer(repo, m, f, backup_id, progress)
        os.replace(tmp, path)  # only a verified stream gets the final name
        return n
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
