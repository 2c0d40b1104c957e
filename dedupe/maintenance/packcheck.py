"""The pack check of FORMAT.md section 13, one for ``check`` and for gc's mark pass: an
indexed pack is present, has the size the index records, and its table holds every
entry the index lists for it. Each failure is a ``DedupeError`` whose message says
what is wrong with the pack (the callers name the pack)."""

from __future__ import annotations

import mmap
import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor

from dedupe.errors import DedupeError
from dedupe.memory import heap_buffers_up_to, new_buffer
from dedupe.repository import Repository
from repo_format import layout, pack
from repo_format.errors import FormatError
from repo_format.ids import object_name

# The chunks opened come from the heap and reuse its pages, and whole packs are read into
# a few buffers used again and again (a local storage's ``get_into``), instead of each
# being a fresh mapping whose pages all fault in: that was most of a check's system time.
HEAP_BUFFERS = 4 << 20
PACK_BUFFER = 20 << 20  # a pack as written (16 MiB) with room for a large last chunk
PACKS_AHEAD = 1  # whole packs read ahead of the one being verified (memory: that many packs more)


def pack_table(repo: Repository, name: str, stored_size: int | None, size: int, table_len: int, *,
               whole: bool = False, on_read: Callable[[int], None] | None = None) -> list[pack.PackEntry]:
    """The table of the indexed pack ``name`` (``size`` and ``table_len`` as the index
    records them), once it is found in storage (``stored_size``: its listed size, None
    when not listed) with that size. With ``whole`` the pack is read entirely (its
    length reported to ``on_read``), its hash checked against its name and every blob
    opened, decompressed and re-hashed; otherwise only its table is read."""
    if stored_size is None:
        raise DedupeError("missing")
    if stored_size != size:
        raise DedupeError(f"size {stored_size}, index says {size} (truncated or damaged)")
    if whole:
        data = repo.storage.get(layout.pack_path(name))
        if on_read is not None:
            on_read(len(data))
        return _verify_whole(repo, name, data, None, 1)
    tail = repo.read_pack_range(name, size - table_len, table_len)
    return repo.pack_table(name, tail, size)


def require_listed(missing: int) -> None:
    """Fail when the index lists ``missing`` chunks for a pack that its table lacks."""
    if missing != 0:
        raise DedupeError(f"the index lists {missing} chunk(s) in this pack that its table does not have")


def _verify_whole(repo: Repository, name: str, data: bytes | memoryview, openers: ThreadPoolExecutor | None,
                  n: int) -> list[pack.PackEntry]:
    """Check the whole pack ``data`` (its name, its table) and open every blob: on
    ``openers`` in as many slices as it has threads (zstd and BLAKE3 let go of the
    GIL), or here. The error is the first damaged blob's, in pack order, either way."""
    return _finish(*_start(repo, name, data, openers, n))


Opening = tuple[list[pack.PackEntry], list[Future[None]]]  # a pack's table, and its blobs' opens in pack order


def _start(repo: Repository, name: str, data: bytes | memoryview, openers: ThreadPoolExecutor | None, n: int,
           actual_name: str | None = None) -> Opening:
    """Check the pack's name (``actual_name``: its hash, when already taken) and table,
    and open its blobs: here without ``openers``, else sent to them in about ``n``
    slices of equal plaintext each and left running (``_finish`` waits for them)."""
    entries = repo.parse_pack(name, data, actual_name)
    blobs = list(pack.iter_blobs(data, entries))

    def open_all(part: list[tuple[pack.PackEntry, memoryview]]) -> None:
        for e, sealed in part:
            repo.open_chunk(e.chunk_id, sealed, name)

    if openers is None or n <= 1 or len(blobs) < 2:
        open_all(blobs)
        return entries, []
    share = -(-sum(e.raw_len for e in entries) // n)  # slices of equal plaintext: equal work
    parts: list[Future[None]] = []
    cut, raw = 0, 0
    for i, (e, _b) in enumerate(blobs):
        raw += e.raw_len
        if raw >= share or i == len(blobs) - 1:
            parts.append(openers.submit(open_all, blobs[cut:i + 1]))
            cut, raw = i + 1, 0
    return entries, parts


def _finish(entries: list[pack.PackEntry], parts: list[Future[None]]) -> list[pack.PackEntry]:
    """Wait for a pack's opens; raise the first failure in pack order."""
    try:
        for part in parts:
            part.result()  # in order: the first slice that fails holds the first damaged blob
    finally:
        for part in parts:
            part.cancel()
        for part in parts:
            if not part.cancelled():
                part.exception()  # wait: no slice reads the pack after this returns
    return entries


PackJob = tuple[str, int | None, int, int, bool]  # name, stored size, indexed size, table length, whole
TableResult = tuple[str, list[pack.PackEntry] | DedupeError | FormatError, int]  # name, table or error, bytes read


def pack_tables(repo: Repository, jobs: Iterable[PackJob], workers: int | None = None) -> Iterator[TableResult]:
    """``pack_table`` of each job, in order, with whole packs read ahead and verified in
    parallel: each whole pack is read once, sequentially, and its name hash taken, on a
    thread of its own (PACKS_AHEAD packs ahead of the one being verified); its blobs are
    opened and re-hashed on ``workers`` threads, and the next pack's opens are queued
    behind them before this one's are waited for, so the workers never wait for the
    main thread between packs. Errors come back as results, never raised: ``(name,
    error, bytes read)``. Memory: PACKS_AHEAD + 2 whole packs, plus a chunk per worker."""
    workers = workers or max(1, min(4, os.cpu_count() or 1))
    Read = tuple[bytes | memoryview, str]  # a whole pack and its hash (``object_name``)
    ahead: deque[tuple[PackJob, Future[Read] | None, mmap.mmap | None]] = deque()
    source = iter(jobs)
    spare: list[mmap.mmap] = []  # pack buffers free for the next read (a local storage reads into them)
    get_into: Callable[[str, mmap.mmap], memoryview | None] | None = getattr(repo.storage, "get_into", None)
    # the packs whose opens are running: job name, bytes read, buffer, (table, opens) or the error
    running: deque[tuple[str, int, mmap.mmap | None, Opening | DedupeError | FormatError]] = deque()

    def read(name: str, buf: mmap.mmap | None) -> Read:
        path = layout.pack_path(name)
        got = get_into(path, buf) if get_into is not None and buf is not None else None
        data = got if got is not None else repo.storage.get(path)
        return data, object_name(data)

    def buffer_for(size: int) -> mmap.mmap | None:
        if get_into is None:
            return None
        while spare:
            buf = spare.pop()
            if len(buf) > size:
                return buf
        return new_buffer(max(size + 1, PACK_BUFFER))  # pages it never holds cost nothing

    def finished() -> TableResult:
        name, nread, buf, started = running.popleft()
        result: list[pack.PackEntry] | DedupeError | FormatError
        try:
            result = started if isinstance(started, (DedupeError, FormatError)) else _finish(*started)
        except (DedupeError, FormatError) as e:
            result = e
        if buf is not None:
            spare.append(buf)  # nothing reads it any more: _finish waited for its opens
        return name, result, nread

    with heap_buffers_up_to(HEAP_BUFFERS), \
            ThreadPoolExecutor(max_workers=1, thread_name_prefix="check-read") as readers, \
            ThreadPoolExecutor(max_workers=workers, thread_name_prefix="check-open") as openers:
        def fill(reads: int) -> None:
            """Queue jobs until ``reads`` whole-pack reads are queued (or 64 jobs)."""
            while len(ahead) < 64 and sum(1 for _j, f, _b in ahead if f is not None) < reads:
                job = next(source, None)
                if job is None:
                    return
                name, stored_size, size, _table_len, whole = job
                if whole and stored_size is not None and stored_size == size:
                    buf = buffer_for(size)
                    ahead.append((job, readers.submit(read, name, buf), buf))
                else:
                    ahead.append((job, None, None))

        try:
            while True:
                fill(PACKS_AHEAD + 1 - len(running))  # the next pack to verify and the reads ahead of it
                if not ahead:
                    while running:
                        yield finished()
                    return
                (name, stored_size, size, table_len, whole), fut, buf = ahead.popleft()
                if fut is None:
                    while running:  # results stay in job order
                        yield finished()
                    try:
                        result: list[pack.PackEntry] | DedupeError | FormatError = pack_table(
                            repo, name, stored_size, size, table_len, whole=whole)
                    except (DedupeError, FormatError) as e:
                        result = e
                    yield name, result, 0
                    continue
                started: Opening | DedupeError | FormatError
                nread = 0
                try:
                    data, actual = fut.result()
                    nread = len(data)
                    started = _start(repo, name, data, openers, workers, actual)
                    del data
                except (DedupeError, FormatError) as e:
                    started = e
                running.append((name, nread, buf, started))
                if len(running) > 1:  # this pack's opens are queued behind the last one's: finish that
                    yield finished()
        finally:
            for _job, f, _b in ahead:
                if f is not None:
                    f.cancel()
            for _name, _n, _b, started in running:
                if not isinstance(started, (DedupeError, FormatError)):
                    for part in started[1]:
                        part.cancel()
