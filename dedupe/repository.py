"""Open and create repositories; the chunk index; read and verify chunks.

Implements the reader side of FORMAT.md sections 3, 4, 7 and 12 (read ordering).
"""

from __future__ import annotations

import copy
import itertools
import os
import threading
import time
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator, NamedTuple, TypeVar

from dedupe.chunk_index import ChunkIndex, load_numpy
from dedupe.errors import DedupeError
from dedupe.storage import ObjectNotFound, Storage
from repo_format import blob, config, crypto, index, keys, layout, manifest, pack
from repo_format.errors import FormatError, UnsupportedVersionError
from repo_format.ids import ID_KEY_LEN, chunk_id, object_name


T = TypeVar("T")
LOCATE_FIRST, LOCATE_MOST = 256, 4096  # ids per vectorised lookup in iter_locations: the first group, the most


class RepositoryNotFound(DedupeError):
    exit_code = 10


class NotARepository(DedupeError):
    exit_code = 11


class NewerFormat(DedupeError):
    exit_code = 12


class RepositoryExists(DedupeError):
    exit_code = 14


class CorruptObject(DedupeError):
    """Stored bytes are damaged: they do not decode or do not match their id."""

    exit_code = 20


class ChunkNotInIndex(DedupeError):
    exit_code = 21


class MissingObject(DedupeError):
    """A file the index or a manifest names is not in the storage."""

    exit_code = 22


class MissingKeyFile(DedupeError):
    exit_code = 18


class WrongPassphraseError(DedupeError):
    exit_code = 16


class DamagedKeyFileError(DedupeError):
    exit_code = 17


class BackupNotFound(DedupeError):
    exit_code = 30


class RunIdNotBackupId(BackupNotFound):
    """A run id (prefix) given where a backup id is expected; the message says what takes it."""


class AmbiguousBackupId(DedupeError):
    exit_code = 31


class Location(NamedTuple):
    pack: str
    offset: int
    length: int
    raw_len: int


@dataclass(frozen=True)
class PackInfo:
    size: int
    table_len: int


CONFIG_RECORD = "config"  # the local record (storage.cache) of the config this machine first saw


def _same_config_as_before(repo_id: bytes, raw: bytes, where: str) -> None:
    """A config never changes: the first one this machine saw of a repository is
    remembered (its BLAKE3) and any other refused. This catches what no MAC can: an
    unencrypted repository's config, or an encrypted one's turned into an unencrypted one."""
    from dedupe import records  # here: not every command needs the records module (test_layers)

    digest = object_name(raw)
    seen = records.read_record(repo_id, CONFIG_RECORD)
    if not isinstance(seen, dict) or not isinstance(seen.get("blake3"), str):
        records.write_record(repo_id, CONFIG_RECORD, {"blake3": digest})
    elif seen["blake3"] != digest:
        raise CorruptObject(f"{where}: differs from the config this machine saw before: changed by someone who can "
                            f"write the storage? (a config never changes; if you know why it did, remove "
                            f"{records.record_path(repo_id, CONFIG_RECORD)})")


def wrap_format_error(e: FormatError) -> DedupeError:
    if isinstance(e, UnsupportedVersionError):
        return NewerFormat(str(e))
    return CorruptObject(str(e))


class Repository:
    def __init__(self, storage: Storage, cfg: config.RepoConfig, key: keys.Secrets | None = None) -> None:
        self.storage = storage
        self.config = cfg
        self.secrets = key
        self.id_key = key.id_key if key is not None else cfg.id_key
        self.cipher = crypto.BlobCipher(key.enc_key) if key is not None else None
        self._ctx = cfg.repo_id  # associated data that binds segments and manifests to this repository
        # chunk id -> (pack number, offset, stored length, raw length); pack numbers index self._pack_names
        self._index = ChunkIndex()
        self._pack_names: list[str] = []
        self._pack_numbers: dict[str, int] = {}
        self.packs: dict[str, PackInfo] = {}
        self.segments: list[str] = []
        self._listed: frozenset[str] = frozenset()  # segment names present at the last reload_index
        # segments that did not decode at the last reload_index (name -> why); their chunks
        # are unknown: a backup stores them again, a restore that needs one says so
        self.damaged_segments: dict[str, str] = {}

    # -- create / open -------------------------------------------------------------

    @classmethod
    def create(cls, storage: Storage, chunker: config.ChunkerParams | None = None, *,
               passphrase: bytes | None = None, kdf_params: dict[str, int] | None = None,
               id_key: bytes | None = None) -> Repository:
        """A new repository; encrypted (FORMAT.md sections 5.3, 5.4) when given a passphrase."""
        not_empty = storage.not_empty()
        if not_empty is not None:
            raise RepositoryExists(not_empty)
        if storage.exists(layout.CONFIG):
            raise RepositoryExists(f"{storage.location}: already a repository")
        repo_id = os.urandom(16)
        the_id_key = id_key or os.urandom(ID_KEY_LEN)
        key = None
        if passphrase is not None:
            key = keys.Secrets(enc_key=os.urandom(32), id_key=the_id_key, config_mac=True)
        cfg = config.RepoConfig(
            repo_id=repo_id, id_key=b"" if key else the_id_key, chunker=chunker or config.DEFAULT_CHUNKER,
            features=(config.FEATURE_AEAD,) if key else (), created_ns=time.time_ns(),
            extra={"encryption": crypto.SUITE_NAMES[crypto.SUITE_AES256_GCM]} if key else {})
        storage.make_directories(layout.DIRECTORIES)
        if key is not None:
            assert passphrase is not None
            storage.put(layout.KEY_FILE, keys.encode(key, repo_id, passphrase, kdf_params))
        # the config last (a half-made repository has none); authenticated when encrypted
        raw = config.encode(cfg, key.enc_key if key is not None else None)
        storage.create(layout.CONFIG, raw)
        _same_config_as_before(repo_id, raw, f"{storage.location}/{layout.CONFIG}")  # the machine that made it saw it
        return cls(storage, cfg, key)

    @classmethod
    def open(cls, storage: Storage, passphrase: Callable[[], bytes] | None = None, *,
             load_index: bool = True) -> Repository:
        """Open a repository; ``passphrase`` is asked only if it is encrypted. Without
        ``load_index`` the in-memory index stays empty (gc and prune load what they need)."""
        missing = storage.missing()
        if missing is not None:
            raise RepositoryNotFound(missing)
        try:
            raw = storage.get(layout.CONFIG)
        except ObjectNotFound:
            raise NotARepository(f"{storage.location}: not a dedupe repository (no config file)") from None
        try:
            cfg = config.decode(raw, f"{storage.location}/{layout.CONFIG}")
        except UnsupportedVersionError as e:
            raise NewerFormat(str(e)) from None
        except FormatError as e:
            raise NotARepository(f"{storage.location}: not a dedupe repository ({e})") from None
        where = f"{storage.location}/{layout.CONFIG}"
        if not cfg.encrypted and storage.exists(layout.KEY_FILE):
            raise CorruptObject(f"{where}: says the repository is not encrypted, but it has a key file: changed by "
                                f"someone who can write the storage? refusing to write unencrypted data")
        key = None
        listed = None
        if cfg.encrypted:
            if load_index:  # numpy (for the index) is imported while the key derivation runs: it releases the GIL.
                listed = list(storage.list(layout.INDEX_DIR))
                # Not a daemon: an exit (a wrong passphrase, a config that fails its MAC) waits
                # for the import to end; a daemon thread killed mid-import crashes the interpreter.
                # An empty repository (a first backup) has no index to load: no numpy (~20 MiB).
                if listed:
                    threading.Thread(target=load_numpy, name="import-numpy", daemon=False).start()
            key = cls.unlock(storage, cfg, passphrase)
            try:  # before anything is read or written with it (FORMAT.md section 4.4)
                config.authenticate(raw, key.enc_key, key.config_mac, where)
            except FormatError as e:
                raise CorruptObject(str(e)) from None
        _same_config_as_before(cfg.repo_id, raw, where)
        repo = cls(storage, cfg, key)
        if load_index:
            repo.reload_index(listed=listed)
        return repo

    @staticmethod
    def read_key_file(storage: Storage) -> bytes:
        try:
            return storage.get(layout.KEY_FILE)
        except ObjectNotFound:
            raise MissingKeyFile(f"{storage.location}: the key file {layout.KEY_FILE} is missing; "
                                 f"restore it with 'dedupe key import FILE'") from None

    @classmethod
    def unlock(cls, storage: Storage, cfg: config.RepoConfig, passphrase: Callable[[], bytes] | None,
               key_data: bytes | None = None) -> keys.Secrets:
        data = key_data if key_data is not None else cls.read_key_file(storage)
        what = f"{storage.location}/{layout.KEY_FILE}"
        if passphrase is None:
            from dedupe.passphrase import PassphraseUnavailable
            raise PassphraseUnavailable(f"{storage.location} is encrypted and no passphrase was given")
        try:
            key, repo_id = keys.decode(data, passphrase(), what)
        except keys.WrongPassphrase as e:
            raise WrongPassphraseError(str(e)) from None
        except keys.DamagedKeyFile as e:
            raise DamagedKeyFileError(str(e)) from None
        if repo_id != cfg.repo_id:
            raise DamagedKeyFileError(f"{what}: key belongs to another repository ({repo_id.hex()[:12]})")
        return key

    # -- index ------------------------------------------------------------------------

    def _decode_named(self, data: bytes, name: str, path: str, kind: str, decode: Callable[..., T]) -> T:
        """Check a content-named object against its name, then decode it."""
        what = f"{self.storage.location}/{path}"
        if object_name(data) != name:
            raise CorruptObject(f"{what}: content does not match its name (damaged {kind})")
        try:
            return decode(data, what, self.cipher, self._ctx)
        except FormatError as e:
            raise wrap_format_error(e) from None

    def load_segment(self, name: str) -> index.IndexSegment:
        path = layout.index_path(name)
        return self._decode_named(self.storage.get(path), name, path, "index segment", index.decode)

    def load_segment_packed(self, name: str) -> tuple[list[tuple[str, int, int, bytes]], list[str]]:
        """A segment with each pack's entries left packed (index.decode_packed)."""
        path = layout.index_path(name)
        return self._decode_named(self.storage.get(path), name, path, "index segment", index.decode_packed)

    def reload_index(self, on_error: Callable[[str, DedupeError], None] | None = None,
                     listed: list[tuple[str, int]] | None = None) -> None:
        """Load every index segment (FORMAT.md section 7.3): segments superseded by
        another present segment are skipped. A damaged segment is skipped and kept in
        ``damaged_segments``: one bad segment does not take the repository down. Other
        failures (storage, a newer format) raise, or with ``on_error`` (for check) are
        reported there and the segment skipped. What it indexed is then unknown, which is safe: a backup
        stores such chunks again (never referencing a chunk only a damaged segment
        knows), a restore that needs one fails naming ``dedupe repair index``, and gc
        refuses (its own pass reads every segment). ``listed``: the listing of the index
        directory when the caller has just made it (one LIST request fewer on S3)."""
        self._index.clear()
        self._pack_names.clear()
        self._pack_numbers.clear()
        self.packs.clear()
        if listed is None:
            listed = self.storage.list(layout.INDEX_DIR)
        names = [n.rsplit("/", 1)[-1] for n, _ in listed]
        self._listed = frozenset(names)
        segments: dict[str, tuple[list[tuple[str, int, int, bytes]], list[str]]] = {}
        damaged: dict[str, CorruptObject] = {}
        for name in names:
            try:
                path = layout.index_path(name)
                segments[name] = self._decode_named(self.storage.get(path), name, path, "index segment",
                                                    index.decode_packed)
            except ObjectNotFound:
                continue  # removed by a concurrent compaction after it wrote its replacement
            except CorruptObject as e:
                damaged[name] = e
            except DedupeError as e:  # not damage (a storage error, a newer format): not skipped silently
                if on_error is None:
                    raise
                on_error(name, e)
        superseded = {s for _, sup in segments.values() for s in sup}
        # a damaged segment that an intact one supersedes is a leftover (repair index, or
        # a compaction, was interrupted before deleting it): nothing is lost with it
        self.damaged_segments = {n: str(e) for n, e in damaged.items() if n not in superseded}
        superseded &= set(segments)
        self.segments = sorted(n for n in segments if n not in superseded)
        for name in self.segments:
            self.add_segment_packed(segments.pop(name)[0])
        self._index.compact()

    def refresh_index(self) -> None:
        """Reload the index if the set of segments changed since it was loaded. Call it
        after taking a lock: a gc that ran in between replaced segments and deleted packs
        (FORMAT.md section 15)."""
        if frozenset(n.rsplit("/", 1)[-1] for n, _ in self.storage.list(layout.INDEX_DIR)) != self._listed:
            self.reload_index()

    def without_index(self) -> Repository:
        """This repository (storage, config, keys) with an empty index, for callers that
        load only the part of the index they need (gc keeps memory per chunk small)."""
        view = copy.copy(self)
        view._index, view._pack_names, view._pack_numbers, view.packs, view.segments = ChunkIndex(), [], {}, {}, []
        view._listed = frozenset()
        view.damaged_segments = {}
        return view

    def _pack_number(self, name: str, size: int, table_len: int) -> int:
        self.packs[name] = PackInfo(size, table_len)
        num = self._pack_numbers.get(name)
        if num is None:
            num = self._pack_numbers[name] = len(self._pack_names)
            self._pack_names.append(name)
        return num

    def add_segment(self, seg: index.IndexSegment) -> None:
        """Add a segment this process wrote (a backup's, gc's) to the in-memory index."""
        for rec in seg.packs:
            num = self._pack_number(rec.name, rec.size, rec.table_len)
            self._index.add_many([(e.chunk_id, (num, e.offset, e.length, e.raw_len)) for e in rec.entries])

    def add_segment_packed(self, packs: list[tuple[str, int, int, bytes]]) -> None:
        """``add_segment`` from packed entries (``index.decode_packed``)."""
        for name, size, table_len, entries in packs:
            self._index.add_packed(entries, self._pack_number(name, size, table_len))

    def __contains__(self, cid: bytes) -> bool:
        return cid in self._index

    def has_chunk(self, cid: bytes) -> bool:
        return cid in self._index

    def stored_lens_if_indexed(self, cids: list[bytes]) -> list[int | None]:
        """``stored_len_if_indexed`` of many ids in one vectorised search."""
        return self._index.stored_lengths(cids)

    def stored_len_if_indexed(self, cid: bytes) -> int | None:
        """The stored length of an indexed chunk, None when the index lacks it (one lookup)."""
        found = self._index.get(cid)
        return None if found is None else found[2]

    def chunk_count(self) -> int:
        return len(self._index)

    def locate(self, cid: bytes) -> Location:
        found = self.location_if_indexed(cid)
        if found is None:
            raise self.not_indexed(cid)
        return found

    def not_indexed(self, cid: bytes) -> ChunkNotInIndex:
        """The error for a chunk id the index lacks."""
        return ChunkNotInIndex(f"chunk {cid.hex()[:16]}... is not in the index of {self.storage.location}"
                               + self.damage_hint())

    def damage_hint(self) -> str:
        """For errors about chunks the index lacks: the damaged segments, if any."""
        if not self.damaged_segments:
            return ""
        names = ", ".join(n[:16] + "..." for n in sorted(self.damaged_segments))
        return (f" ({len(self.damaged_segments)} index segment(s) damaged: {names}; 'dedupe repair index' "
                f"rebuilds the index from the packs' tables)")

    def index_counts(self) -> dict[str, int]:
        """Pack name -> how many chunk ids the index maps to it."""
        counts = self._index.count_by_pack(len(self._pack_names))
        return {name: counts[i] for i, name in enumerate(self._pack_names)}

    def location_if_indexed(self, cid: bytes) -> Location | None:
        return self._location(self._index.get(cid))

    def locations_if_indexed(self, cids: list[bytes]) -> list[Location | None]:
        """``location_if_indexed`` of each id, in one vectorised search."""
        return [self._location(v) for v in self._index.get_many(cids)]

    def iter_locations(self, cids: Iterable[bytes]) -> Iterator[tuple[bytes, Location | None]]:
        """Each id with ``location_if_indexed``, looked up in groups (one vectorised search
        per group, which gives up the GIL once, not once per id, to the threads beside
        it); the first group is small, so that a caller that starts work on the first
        locations starts soon."""
        source = iter(cids)
        group = LOCATE_FIRST
        while True:
            some = list(itertools.islice(source, group))
            if not some:
                return
            yield from zip(some, self.locations_if_indexed(some))
            group = min(group * 2, LOCATE_MOST)

    def _location(self, found: tuple[int, int, int, int] | None) -> Location | None:
        if found is None:
            return None
        num, off, length, raw = found
        return Location(self._pack_names[num], off, length, raw)

    def iter_index(self) -> Iterator[tuple[bytes, Location]]:
        for cid, (num, off, length, raw) in self._index.items():
            yield cid, Location(self._pack_names[num], off, length, raw)

    # -- sealing: every blob, table, segment and manifest goes through these -----------
    # (FORMAT.md section 5.3: the seal byte; encryption plugs in here, nowhere else)

    def seal_chunk(self, cid: bytes, data: bytes | memoryview, level: int) -> bytes:
        """The stored form of one chunk (a blob envelope)."""
        return blob.seal(data, level, self.cipher, cid)

    def seal_chunks(self, cids: list[bytes], datas: list[bytes | memoryview], level: int) -> list[bytes]:
        """``seal_chunk`` of each chunk, compressed in one call (``blob.seal_many``)."""
        return blob.seal_many(datas, cids, level, self.cipher)

    def new_pack_builder(self) -> pack.PackBuilder:
        return pack.PackBuilder(self.cipher)

    def pack_table(self, pack_name: str, tail: bytes | memoryview, pack_size: int) -> list[pack.PackEntry]:
        """Decode a pack's table from its last ``table_len`` bytes."""
        what = f"pack {layout.pack_path(pack_name)}"
        try:
            return pack.decode_table(tail, pack_size, what, self.cipher)
        except FormatError as e:
            raise wrap_format_error(e) from None

    def parse_pack(self, pack_name: str, data: bytes | memoryview, actual_name: str | None = None
                   ) -> list[pack.PackEntry]:
        """Check a whole pack (its name and structure); return its table. ``actual_name``:
        the pack's hash (``object_name``) when the caller took it already."""
        what = f"pack {layout.pack_path(pack_name)}"
        try:
            pack.check_pack_name(data, pack_name, what, actual_name)
            return pack.parse_pack(data, what, self.cipher)
        except FormatError as e:
            raise wrap_format_error(e) from None

    def write_segment(self, seg: index.IndexSegment) -> str:
        """Store an index segment; returns its name. The in-memory index is not changed."""
        return self._put_segment(index.encode(seg, self.cipher, self._ctx))

    def write_segment_packed(self, packs: list[tuple[str, int, int, bytes]], supersedes: list[str]) -> str:
        """``write_segment`` from packed entries (index.encode_packed)."""
        return self._put_segment(index.encode_packed(packs, supersedes, self.cipher, self._ctx))

    def _put_segment(self, data: bytes) -> str:
        name = object_name(data)
        self.storage.put(layout.index_path(name), data)
        return name

    def write_manifest(self, m: manifest.Manifest) -> str:
        """Store a manifest: the commit point of a backup (FORMAT.md section 12)."""
        data = manifest.encode(m, self.cipher, self._ctx)
        name = object_name(data)
        self.storage.put(layout.manifest_path(name), data)
        return name

    # -- reading chunks ---------------------------------------------------------------

    def open_chunk(self, cid: bytes, sealed: bytes | memoryview, pack: str) -> bytes:
        """Unwrap and verify one blob read from ``pack``: the plaintext's keyed hash must be ``cid``."""
        what = f"chunk {cid.hex()[:16]}... in pack {layout.pack_path(pack)}"
        try:
            data = blob.open_blob(sealed, what, self.cipher, cid)
        except FormatError as e:
            raise CorruptObject(str(e)) from None
        if chunk_id(self.id_key, data) != cid:
            raise CorruptObject(f"{what}: content does not match its id (damaged pack)")
        return data

    def read_pack_range(self, pack: str, offset: int, length: int) -> bytes:
        path = layout.pack_path(pack)
        try:
            data = self.storage.get_range(path, offset, length)
        except ObjectNotFound:
            raise MissingObject(f"pack {self.storage.location}/{path} is missing") from None
        if len(data) != length:
            raise CorruptObject(f"pack {self.storage.location}/{path} is truncated "
                                f"(wanted bytes {offset}..{offset + length}, got {len(data)})")
        return data

    # -- manifests --------------------------------------------------------------------

    def manifest_names(self) -> list[str]:
        return sorted(n.rsplit("/", 1)[-1] for n, _ in self.storage.list(layout.MANIFEST_DIR))

    def load_manifest(self, name: str) -> manifest.Manifest:
        path = layout.manifest_path(name)
        try:
            data = self.storage.get(path)
        except ObjectNotFound:
            raise BackupNotFound(f"backup {name[:12]} not found in {self.storage.location}") from None
        return self._decode_named(data, name, path, "manifest", manifest.decode)

    def resolve_backup_id(self, prefix: str) -> str:
        prefix = prefix.strip().lower()
        if not prefix or any(c not in "0123456789abcdef" for c in prefix):
            raise BackupNotFound(f"{prefix!r} is not a backup id (expected hex digits)")
        matches = [n for n in self.manifest_names() if n.startswith(prefix)]
        if not matches:
            runs = {m.run for m in map(self.load_manifest, self.manifest_names()) if m.run.startswith(prefix)}
            if len(runs) == 1:
                raise RunIdNotBackupId(
                    f"{prefix} is the id of a backup run, not of a backup: `dedupe show {prefix}` describes the run, "
                    f"`dedupe list --run {prefix}` lists its backups (their ids go here), "
                    f"`dedupe restore --run {prefix} --to-lxd` restores an LXD run"
                )
            raise BackupNotFound(f"no backup with id {prefix} in {self.storage.location}")
        if len(matches) > 1:
            raise AmbiguousBackupId(f"backup id {prefix} is ambiguous: {len(matches)} backups start with it")
        return matches[0]


def default_host() -> str:
    return os.uname().nodename
