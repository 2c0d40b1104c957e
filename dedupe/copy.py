"""``dedupe copy``: backups from one repository into another, sending only what the
target lacks.

When both repositories cut and name chunks the same way (same id key and content
chunker: ``dedupe init --copy-params-from``), a chunk has the same id in both, so the
copy sends only the chunks the target's index lacks, and the copied backups keep
deduplicating with everything else in the target. Each chunk is read from the
source, opened and re-hashed against its id (nothing unverified is sent), then
stored: the sealed blob as it is when neither repository is encrypted (a plaintext
blob is valid in any repository, FORMAT.md section 5.3), else sealed again for the
target. The manifest is then written as it was, last: the copy of each backup
commits like a backup does (section 12), so an interrupted copy leaves at worst
unreferenced packs that gc reclaims, and the next run completes it.

Otherwise (another id key or chunker) each backup is rebuilt from the source and
stored again through the target's chunker, and checked against the original's size
and stream checksum before its manifest is written.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator

from dedupe import locking
from dedupe.backup.session import BackupResult, BackupSession
from dedupe.errors import DedupeError
from dedupe.progress import Progress, ProgressCallback
from dedupe.repository import Repository
from dedupe.read import iter_items, iter_stream_pieces, read_blobs, read_chunks
from dedupe.backup.writer import Transaction
from repo_format import codecs, config, items, manifest

LOCK_WAIT_S = 60.0


class SameRepository(DedupeError):
    exit_code = 2


class CopyMismatch(DedupeError):
    """What was rebuilt for the target differs from the source backup: nothing was committed."""

    exit_code = 23


@dataclass
class CopyResult:
    copied: list[tuple[str, str]] = field(default_factory=list)  # (source id, target id)
    skipped: list[str] = field(default_factory=list)  # source ids already in the target
    chunks_sent: int = 0
    bytes_sent: int = 0  # stored (sealed) bytes written to the target's packs
    raw_bytes_sent: int = 0
    chunks_present: int = 0  # chunks the target already had
    rechunked: bool = False

    def to_json(self) -> dict[str, Any]:
        return {"copied": [{"source": s, "target": t} for s, t in self.copied], "skipped": self.skipped,
                "chunks_sent": self.chunks_sent, "bytes_sent": self.bytes_sent,
                "raw_bytes_sent": self.raw_bytes_sent, "chunks_present": self.chunks_present,
                "rechunked": self.rechunked}


def params_of(repo: Repository) -> tuple[config.ChunkerParams, bytes]:
    """What a new repository needs to share chunk ids with ``repo``: chunker and id key."""
    return repo.config.chunker, repo.id_key


def shares_chunks(source: Repository, target: Repository) -> bool:
    return source.id_key == target.id_key and source.config.chunker == target.config.chunker


def _identity(m: manifest.Manifest) -> tuple[Any, ...]:
    return (m.kind, m.group, m.time_ns, m.host, m.run, m.size, m.stream_b3)


def select(repo: Repository, ids: Iterable[str] = (), group: str | None = None) -> list[tuple[str, manifest.Manifest]]:
    """The backups named by id prefix, or those of ``group`` (and below), or all; oldest first."""
    names = list(dict.fromkeys(repo.resolve_backup_id(i) for i in ids)) or repo.manifest_names()
    chosen = [(n, repo.load_manifest(n)) for n in names]
    if group is not None:
        g = group.rstrip("/")
        chosen = [(n, m) for n, m in chosen if m.group == g or m.group.startswith(g + "/")]
    return sorted(chosen, key=lambda c: (c[1].time_ns, c[0]))


class _TargetBackups:
    """Which backups the target has: by name, else (encrypted or re-chunked copies
    have other names) by what they are, loaded only when needed."""

    def __init__(self, target: Repository) -> None:
        self.target = target
        self.names = set(target.manifest_names())
        self._identities: set[tuple[Any, ...]] | None = None

    def has(self, name: str, m: manifest.Manifest) -> bool:
        if name in self.names:
            return True
        if self._identities is None:
            self._identities = {_identity(self.target.load_manifest(n)) for n in self.names}
        return _identity(m) in self._identities

    def add(self, name: str, m: manifest.Manifest) -> None:
        self.names.add(name)
        if self._identities is not None:
            self._identities.add(_identity(m))


def copy_backups(source: Repository, target: Repository, ids: Iterable[str] = (), group: str | None = None,
                 progress: ProgressCallback | None = None) -> CopyResult:
    """Copy the chosen backups (all by default) that the target does not have yet."""
    if source.config.repo_id == target.config.repo_id:
        raise SameRepository(f"{target.storage.location} is the source repository itself")
    result = CopyResult(rechunked=not shares_chunks(source, target))
    present = _TargetBackups(target)
    for name, m in select(source, ids, group):
        if present.has(name, m):
            result.skipped.append(name)
            continue
        if result.rechunked:
            new_id = _copy_rechunked(source, target, name, m, result)
        else:
            new_id = _copy_chunks(source, target, m, result)
        result.copied.append((name, new_id))
        present.add(new_id, m)
        if progress is not None:
            progress(Progress("copy", name[:12], result.raw_bytes_sent, None, result.raw_bytes_sent,
                              result.bytes_sent, len(result.copied)))
    return result


def run_copy(source: Repository, target: Repository, ids: Iterable[str] = (), group: str | None = None,
             progress: ProgressCallback | None = None) -> CopyResult:
    """``copy_backups`` under a shared lock on each repository."""
    with locking.acquire(source.storage, exclusive=False, purpose="copy (source)", wait_s=LOCK_WAIT_S), \
            locking.acquire(target.storage, exclusive=False, purpose="copy", wait_s=LOCK_WAIT_S):
        return copy_backups(source, target, ids, group, progress)


# -- same chunk ids: send the chunks the target lacks -------------------------------------

def _refs_of(source: Repository, m: manifest.Manifest) -> dict[bytes, int]:
    """Every chunk a backup needs: its item stream's and its items' (id -> raw length)."""
    refs: dict[bytes, int] = {cid: n for cid, n in m.items}
    for item in iter_items(source, m, "backup"):
        for cid, n in items.chunk_refs(item):
            refs[cid] = n
    return refs


def _copy_chunks(source: Repository, target: Repository, m: manifest.Manifest, result: CopyResult) -> str:
    txn = Transaction(target)
    try:
        refs = _refs_of(source, m)
        missing = [(cid, n) for cid, n in refs.items() if not txn.known(cid)]
        result.chunks_present += len(refs) - len(missing)
        passthrough = not source.config.features and not target.config.features
        for cid, sealed, plain in read_sealed(source, missing):
            blob = sealed if passthrough else target.seal_chunk(cid, plain, codecs.DEFAULT_ZSTD_LEVEL)
            txn.add(cid, blob, len(plain))
            result.chunks_sent += 1
            result.bytes_sent += len(blob)
            result.raw_bytes_sent += len(plain)
        lacking = sum(1 for cid in refs if not txn.known(cid))
        if lacking:
            raise CopyMismatch(f"copy of a {m.group} backup: {lacking} chunk(s) did not reach the target")
        return txn.commit(m)  # packs, the index segment, then the manifest
    except BaseException:
        txn.abort()
        raise


def read_sealed(repo: Repository, refs: list[tuple[bytes, int]],
                workers: int | None = None) -> Iterator[tuple[bytes, bytes, bytes]]:
    """``(chunk id, sealed blob, plaintext)`` of each ref, in pack order, read as a
    restore reads (a whole pack per request on S3, bounded memory), each blob opened
    and its plaintext checked against the id."""
    ordered = sorted(refs, key=lambda r: (repo.locate(r[0]).pack, repo.locate(r[0]).offset))

    def open_blob(cid: bytes, stored: memoryview, pack: str) -> tuple[bytes, bytes, bytes]:
        sealed = bytes(stored)
        return cid, sealed, repo.open_chunk(cid, sealed, pack)

    return read_blobs(repo, ordered, open_blob, workers)


# -- other chunking: rebuild and store again ----------------------------------------------

class _PiecesReader:
    """A read-only stream over an iterator of byte pieces."""

    def __init__(self, pieces: Iterator[bytes | memoryview]) -> None:
        self._pieces = pieces
        self._buf = b""

    def read(self, n: int = -1, /) -> bytes:
        while n < 0 or len(self._buf) < n:
            piece = next(self._pieces, None)
            if piece is None:
                break
            self._buf += bytes(piece)
        if n < 0:
            n = len(self._buf)
        out, self._buf = self._buf[:n], self._buf[n:]
        return out


class _CopySession(BackupSession):
    """A backup session that re-creates ``original`` (same group, time, host, run,
    meta, tags) and refuses to commit anything that differs from it."""

    def __init__(self, target: Repository, original: manifest.Manifest) -> None:
        super().__init__(target, kind=original.kind, group=original.group, run=original.run,
                         host=original.host, meta=original.meta)
        self.time_ns = original.time_ns
        self.original = original
        commit_txn = self.txn.commit
        self.txn.commit = lambda m: commit_txn(dataclasses.replace(m, tags=list(original.tags)))  # type: ignore[method-assign]

    def commit(self, size: int, stream_b3: bytes | None = None, meta: dict[str, Any] | None = None) -> BackupResult:
        o = self.original
        if size != o.size or (o.stream_b3 is not None and stream_b3 != o.stream_b3):
            raise CopyMismatch(f"copy of a {o.group} backup: rebuilt {size} bytes that do not match "
                               f"the source ({o.size} bytes, BLAKE3 recorded at backup time)")
        return super().commit(size, stream_b3, meta)


def _copy_rechunked(source: Repository, target: Repository, name: str, m: manifest.Manifest,
                    result: CopyResult) -> str:
    from dedupe.backup.stream import backup_stream
    from dedupe.backup.tar import backup_tar

    with _CopySession(target, m) as s:
        if m.kind == manifest.KIND_STREAM:
            res = backup_stream(s, _PiecesReader(iter_stream_pieces(source, m)))  # type: ignore[arg-type]
        elif m.kind == manifest.KIND_TAR:
            res = backup_tar(s, _PiecesReader(iter_stream_pieces(source, m)))  # type: ignore[arg-type]
        else:
            for item in iter_items(source, m, f"backup {name[:12]}"):
                refs = items.chunk_refs(item)
                if items.kind(item) == items.ITEM_ENTRY and refs:
                    # (the refs fill in as the pipeline stores the chunks, before the item is written)
                    new = s.store_blocks(read_chunks(source, [(c[0], c[1]) for c in refs]))
                    item = items.with_entry_chunks(item, new)
                s.add_item(item)
            res = s.commit(m.size, m.stream_b3)
        st = s.txn.stats
        result.chunks_sent += st.new_chunks
        result.bytes_sent += st.new_stored
        result.raw_bytes_sent += st.new_bytes
        return res.id
