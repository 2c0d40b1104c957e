"""The shared read path: item streams, chunks in order, whole streams verified (restore,
check, gc, stats, copy and the LXD restores all read through it).

Chunks are fetched in spans (neighbouring blobs of one pack in one ranged read:
up to 4 MiB locally, whole packs from remote storages), opened and verified in
batches on worker threads, and handed out in order; memory is bounded by the spans
and batches in flight, whatever the size of the backup.
"""

from __future__ import annotations

import itertools
import os
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, BinaryIO, Callable, Iterable, Iterator, TypeVar

from dedupe.errors import DedupeError
from dedupe.memory import heap_buffers_up_to
from dedupe.progress import Progress, ProgressCallback
from dedupe.repository import Location, Repository
from repo_format import items, manifest
from repo_format.ids import stream_hash

# Spans and batches: 4 MiB reads and 2 MiB batches keep a tar restore of the 1.9 GiB corpus
# of issue #15 at 105 MB peak (8 and 8 MiB: 179 MB) for no more CPU (benchmarks/RESULTS.md).
MAX_BATCH_SPAN = 4 << 20  # stored bytes one ranged read covers, unless the storage asks for more
MAX_BATCH_RAW = 2 << 20  # plaintext one batch may decompress to (bounds memory)
MAX_GAP = 1 << 20  # unneeded stored bytes a ranged read may span to join two needed blobs
BATCHES_IN_FLIGHT = 4
READS_IN_FLIGHT = 8  # at most this many ranged reads queued or running (for small scattered spans)
HEAP_BUFFERS = 4 << 20  # chunks (and sealed blobs) up to this size reuse heap memory while restoring
GATHER = 1 << 20  # a stream restore writes pieces smaller than GATHER_BELOW in blocks of this size
GATHER_BELOW = 256 << 10  # the smallest chunk a stream is cut into: its chunks go as they are
LOOKAHEAD_BYTES = 32 << 20  # stored bytes of upcoming spans a wide read may be widened to cover


class RestoreMismatch(DedupeError):
    """The rebuilt data does not match what the manifest recorded."""

    exit_code = 23


class WrongBackupKind(DedupeError):
    exit_code = 32


class RestoreTargetError(DedupeError):
    """The file or stream a restore writes to cannot be written (missing directory,
    permissions, disk full)."""

    exit_code = 24


def target_error(e: OSError, target: str) -> RestoreTargetError:
    what = e.strerror or type(e).__name__
    return RestoreTargetError(f"cannot write {target}: {what}")


Batch = tuple[str, int, int, list[tuple[bytes, Location]]]
T = TypeVar("T")
Opener = Callable[[bytes, memoryview, str], T]  # (chunk id, stored blob, pack name) -> what to yield


def _located(repo: Repository, refs: Iterable[tuple[bytes, int]]) -> Iterator[tuple[bytes, Location]]:
    """Each ref's chunk id with its location (``Repository.iter_locations``: one numpy
    search per group of refs; one per ref gave up the GIL to the worker threads once per
    chunk). A chunk the index lacks fails as ``locate`` does, at most a group early."""
    for cid, loc in repo.iter_locations(cid for cid, _n in refs):
        if loc is None:
            raise repo.not_indexed(cid)
        yield cid, loc


def _batches(repo: Repository, refs: Iterable[tuple[bytes, int]], max_span: int = MAX_BATCH_SPAN,
             max_raw: int | None = MAX_BATCH_RAW) -> Iterator[Batch]:
    """Runs of refs whose blobs lie close together in one pack, each read with one
    ranged read of at most ``max_span`` stored bytes and (unless None) opened to at
    most ``max_raw`` bytes of plaintext."""
    cur: list[tuple[bytes, Location]] = []
    pack, start, end, raw = "", 0, 0, 0
    for cid, loc in _located(repo, refs):
        if cur and loc.pack == pack and start <= loc.offset <= end + MAX_GAP \
                and max(end, loc.offset + loc.length) - start <= max_span \
                and (max_raw is None or raw + loc.raw_len <= max_raw):
            cur.append((cid, loc))
            end = max(end, loc.offset + loc.length)
            raw += loc.raw_len
            continue
        if cur:
            yield pack, start, end, cur
        cur, pack, start, end, raw = [(cid, loc)], loc.pack, loc.offset, loc.offset + loc.length, loc.raw_len
    if cur:
        yield pack, start, end, cur


class _Read:
    """One ranged read of a pack, shared by the runs of refs it covers."""

    __slots__ = ("pack", "start", "end", "last", "future")

    def __init__(self, pack: str, start: int, end: int, last: int) -> None:
        self.pack, self.start, self.end, self.last = pack, start, end, last
        self.future: Future[memoryview] | None = None


def _shared_reads(spans: Iterable[Batch], max_span: int) -> Iterator[tuple[_Read, list[tuple[bytes, Location]]]]:
    """Each span with the read that serves it. A new read of a pack is widened to
    cover the runs of the next LOOKAHEAD_BYTES (stored) that fall in that pack just
    after it (a stream alternating between new data and chunks it repeats from older
    packs comes back to the new pack several times); those runs then share it instead
    of sending a request each."""
    ahead: deque[tuple[int, Batch]] = deque()  # (position, span), the look-ahead window
    ahead_bytes = 0
    live: dict[str, _Read] = {}  # pack -> its newest read that later spans still use
    source = enumerate(spans)
    done = False
    while True:
        while not done and (len(ahead) < 2 or ahead_bytes < LOOKAHEAD_BYTES):
            nxt = next(source, None)
            if nxt is None:
                done = True
                break
            ahead.append(nxt)
            ahead_bytes += nxt[1][2] - nxt[1][1]
        if not ahead:
            return
        i, (pack, start, end, members) = ahead.popleft()
        ahead_bytes -= end - start
        read = live.get(pack)
        if read is None or not (read.start <= start and end <= read.end):
            read = live[pack] = _Read(pack, start, end, i)
            for j, (p, s, e, _m) in ahead:
                if p == pack and read.start <= s <= read.end + MAX_GAP and max(read.end, e) - read.start <= max_span:
                    read.end, read.last = max(read.end, e), j
        yield read, members
        for name in [n for n, r in live.items() if r.last <= i]:
            del live[name]


def _split(members: list[tuple[bytes, Location]], max_raw: int) -> Iterator[list[tuple[bytes, Location]]]:
    """Consecutive runs of ``members`` opening to at most ``max_raw`` bytes each."""
    cur: list[tuple[bytes, Location]] = []
    raw = 0
    for cid, loc in members:
        if cur and raw + loc.raw_len > max_raw:
            yield cur
            cur, raw = [], 0
        cur.append((cid, loc))
        raw += loc.raw_len
    if cur:
        yield cur


def _open_members(open_blob: Opener[T], pack: str, start: int, data: memoryview,
                  members: list[tuple[bytes, Location]]) -> list[T]:
    out = []
    opened: dict[bytes, T] = {}
    for cid, loc in members:
        if cid in opened:
            out.append(opened[cid])
            continue
        chunk = opened[cid] = open_blob(cid, data[loc.offset - start:loc.offset - start + loc.length], pack)
        out.append(chunk)
    return out


def read_chunks(repo: Repository, refs: Iterable[tuple[bytes, int]], workers: int | None = None) -> Iterator[bytes]:
    """The plaintext of each ref, in order, each verified against its id (``read_blobs``)."""
    return read_blobs(repo, refs, repo.open_chunk, workers)


def read_blobs(repo: Repository, refs: Iterable[tuple[bytes, int]], open_blob: Opener[T],
               workers: int | None = None) -> Iterator[T]:
    """``open_blob(chunk id, stored blob, pack)`` of each ref, in order (a ref repeated
    within one batch is opened once).

    Two stages. Reads: runs of neighbouring blobs, each one ranged read of up to
    ``Storage.read_span`` stored bytes (a whole pack on S3; locally up to 4 MiB and
    one batch), run on their own threads about half a span ahead of the opens. Opens:
    each read is cut into batches of at most MAX_BATCH_RAW plaintext, opened and
    verified on worker threads, at most BATCHES_IN_FLIGHT ahead of the consumer.
    Memory: the reads ahead, the reads the open batches cut from (at most
    BATCHES_IN_FLIGHT, usually one or two), and BATCHES_IN_FLIGHT + 1 batches of
    plaintext, whatever the size of the backup."""
    wide = repo.storage.read_span or None  # S3: whole packs; local: our own spans
    span = wide or MAX_BATCH_SPAN
    workers = workers or max(1, min(4, os.cpu_count() or 1))
    threads = max(1, repo.storage.read_threads)
    # A local read is cheap: there each read stays one batch, freed as soon as it is opened.
    spans = _batches(repo, refs, span, None if wide else MAX_BATCH_RAW)
    runs = _shared_reads(spans, span) if wide else ((_Read(p, s, e, 0), m) for p, s, e, m in spans)
    reads: deque[tuple[_Read, list[tuple[bytes, Location]], int]] = deque()  # and the bytes each one queued
    queued = 0  # stored bytes of the reads sent for the runs in ``reads``
    pending: deque[tuple[_Read, list[tuple[bytes, Location]]]] = deque()
    opens: deque[Future[list[T]]] = deque()

    def fetch(pack: str, start: int, length: int) -> memoryview:
        return memoryview(repo.read_pack_range(pack, start, length))

    def open_after(read: _Read, members: list[tuple[bytes, Location]]) -> list[T]:
        assert read.future is not None
        return _open_members(open_blob, read.pack, read.start, read.future.result(), members)

    with heap_buffers_up_to(HEAP_BUFFERS), \
            ThreadPoolExecutor(max_workers=threads, thread_name_prefix="restore-read") as readers, \
            ThreadPoolExecutor(max_workers=workers, thread_name_prefix="restore") as openers:
        def read_ahead() -> None:
            nonlocal queued
            while len(reads) < READS_IN_FLIGHT and queued < span // 2:
                nxt = next(runs, None)
                if nxt is None:
                    return
                read, members = nxt
                cost = 0
                if read.future is None:  # the first run of a shared read sends it
                    read.future = readers.submit(fetch, read.pack, read.start, read.end - read.start)
                    cost = read.end - read.start
                reads.append((read, members, cost))
                queued += cost

        try:
            while True:
                read_ahead()
                while len(opens) < BATCHES_IN_FLIGHT:
                    if not pending:
                        if not reads:
                            break
                        read, members, cost = reads.popleft()
                        queued -= cost
                        read_ahead()
                        pending.extend((read, run) for run in _split(members, MAX_BATCH_RAW))
                    opens.append(openers.submit(open_after, *pending.popleft()))
                if not opens:
                    return
                yield from opens.popleft().result()
        finally:
            for fut in [*opens, *(r.future for r, *_ in (*reads, *pending) if r.future is not None)]:
                fut.cancel()


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
    read and decoded once and walked twice in step (``tee``: once for the chunk refs,
    which run ahead of the writer by the reads in flight, once for the headers); the
    items in between are held, a few thousand at most (LOCATE_MOST refs)."""
    layout_items, ref_items = itertools.tee(iter_items(repo, m))
    chunks = read_chunks(repo, _refs_of(ref_items))
    for item in layout_items:
        k = items.kind(item)
        if k == items.ITEM_TAR_MEMBER:
            yield items.member_header(item)
            for _ in items.entry_chunks(items.entry_of(item)):
                yield next(chunks)
            padding = items.member_padding(item)
            if padding:
                yield padding
        elif k == items.ITEM_TAR_TAIL:
            for _ in items.chunk_refs(item):
                yield next(chunks)


def write_stream(repo: Repository, m: manifest.Manifest, out: BinaryIO, backup_id: str,
                 progress: ProgressCallback | None = None) -> int:
    """Write the original stream to ``out`` and verify its size and BLAKE3. The writes
    and the hash each run on a thread of their own, one block behind the thread that
    assembles the stream (which then only gathers pieces): a slow disk, the hash or the
    reads alone bound the speed, not the sum. Small pieces (a tar's headers, padding and
    small files) are gathered into blocks of about GATHER bytes first (one copy), so the
    writes and the hand-offs are per block, not per piece."""
    hasher = stream_hash()
    written = 0
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="restore-hash") as hashing, \
            ThreadPoolExecutor(max_workers=1, thread_name_prefix="restore-write") as writing:
        hashed: Future[None] | None = None
        wrote: Future[Any] | None = None

        def emit(block: bytes | bytearray | memoryview) -> None:
            nonlocal hashed, wrote
            if wrote is not None:
                wrote.result()  # the write's own error (disk full, closed pipe) surfaces here
            wrote = writing.submit(out.write, block)  # ``block`` is never changed after this
            if hashed is not None:
                hashed.result()
            hashed = hashing.submit(hasher.update, block)

        gathered = bytearray()
        try:
            for piece in iter_stream_pieces(repo, m):
                written += len(piece)
                if len(piece) >= GATHER_BELOW:
                    if gathered:
                        emit(gathered)
                        gathered = bytearray()
                    emit(piece)
                else:
                    gathered += piece
                    if len(gathered) >= GATHER:
                        emit(gathered)
                        gathered = bytearray()
                if progress is not None:
                    progress(Progress("restore", backup_id[:12], written, m.size))
            if gathered:
                emit(gathered)
        finally:
            for fut in (wrote, hashed):
                if fut is not None:
                    fut.exception()  # nothing is left writing to ``out`` once this returns
        for fut in (wrote, hashed):
            if fut is not None:
                fut.result()
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
        try:
            with open(tmp, "wb") as f:
                n = writer(repo, m, f, backup_id, progress)
            os.replace(tmp, path)  # only a verified stream gets the final name
        except DedupeError:
            raise
        except OSError as e:  # the target's own failures; the repository's are typed
            raise target_error(e, str(path)) from e
        return n
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
