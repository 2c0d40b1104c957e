"""The files cache: skip reading files that did not change since the last backup.

Like borg's and restic's, it keys on what the file system says about a file:
path, inode, size, mtime and ctime (nanoseconds). A hit reuses the chunk list of
the previous backup, provided every chunk is still in the repository's index (so
a gc that removed them turns the hit into a miss, never into a broken backup).
A record also keeps the file's sparse map and extended attributes (ACLs included), so
an unchanged file is not even opened: ctime changes with any change of its xattrs,
and its sparse map only changes with its content (size, mtime and ctime).
A hit is carried over into the next cache, so every unchanged night hits.
In memory and on disk a record is one ``bytes``: the key packed (``KEY``) with the
entry's mode, owner ids and names (``HEAD``, then the names), then the item the backup
stored for the file, encoded (``items.encode_item``) without its path, which is the
record's key (``items.entry_item_without_path``; its chunk refs, sparse map and xattrs
are read from it on a hit): a root file system and its snapshot are ~70k records,
which as Python lists took ~60 MB, as bytes ~16 MB. ``lookup_item`` gives an unchanged
file's item as those bytes when everything it holds is as before (the key, mode, ids
and names; ctime covers the xattrs), so an unchanged night neither builds nor encodes
its items.
The cache is local (``$XDG_CACHE_HOME/dedupe/<repo id>/files-<group hash>``), one
file per repository and group, rewritten after each successful backup that changed it.
When a backup keeps exactly the records it loaded (an unchanged night), the file is left
as it is and only a small note beside it (``<name>.last``) names the new backup as the
one the cache was last written after (``previous``); the note holds the cache file's
inode, size and mtime, so a note that does not belong to the file beside it is ignored.
The file is written streamed (packed and sealed a megabyte at a time), never held whole
in memory beside its records (three copies of ~16 MB at the peak of a night before). A missing,
damaged or foreign cache is simply empty: it can only save work, never change
what is stored. It is 0600 in 0700 directories; one that cannot be written is one
warning (every file is read again next time).

No path is in clear for an encrypted repository: the whole file is sealed with
AES-256-GCM (a random 12-byte nonce per write; the repository id as associated data)
under a key derived by HKDF-SHA256 from the repository's encryption key with a label of
its own (``CACHE_INFO``), and its name's group hash is keyed with a second derived key.
Only ``load``/``save`` see the difference: in memory the records are keyed by path as
before, so ``lookup``/``remember`` cost the same and ``carry(prefix)`` still takes a
whole subtree by path prefix. A cache that does not open (another key, damaged, cut
short) is empty, never an error. For an unencrypted repository the file stays plain
msgpack (0600): the repository itself holds every path in clear for whoever can read it,
and there is no secret to derive a key from (its id key is in its config, in clear).
A plain cache left by an older version for an encrypted repository is read once (so
the next backup still hits) and deleted when the sealed one is written.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import struct
import time
from pathlib import Path
from typing import Any, BinaryIO, Callable, NamedTuple

import msgpack

from dedupe.repository import Repository
from repo_format import items

VERSION = 4  # 4: records carry the entry's head and encoded item; older caches are read as empty
SEALED_MAGIC = b"DDFC\x01"  # a sealed cache file: magic, 12-byte nonce, AES-256-GCM of the msgpack
CACHE_INFO = b"dedupe 2026-12 files cache v1"  # HKDF label: these keys serve nothing else
NONCE_LEN = 12
# Files modified this close to the start of the backup are not cached: a change in
# the same timestamp tick would go unnoticed next time.
RECENT_NS = 2_000_000_000


def cache_root() -> Path:
    """Where the files caches live: the local cache directory (dedupe.records.cache_base)."""
    from dedupe.records import cache_base
    return cache_base()


Key = tuple[int, int, int, int]  # inode, size, mtime_ns, ctime_ns
Refs = list[tuple[bytes, int]]
Sparse = list[list[int]] | None  # data segments [offset, length], None when dense
KEY = struct.Struct("<QQqq")  # a record's first bytes: inode, size, mtime_ns, ctime_ns
HEAD = struct.Struct("<QQqqIIIH")  # KEY, then mode, uid, gid, length of the names (then the names, the item)
Facts = tuple[int, int, int, str, str]  # mode, uid, gid, user name, group name


@functools.lru_cache(maxsize=256)
def _names(uname: str, gname: str) -> bytes:
    return f"{uname}\0{gname}".encode("utf-8", "surrogateescape")


def head(key: Key, facts: Facts) -> bytes:
    """A record's first bytes for an entry (struct.error when a value is out of range)."""
    names = _names(facts[3], facts[4])
    return HEAD.pack(*key, facts[0], facts[1], facts[2], len(names)) + names


def _item_at(blob: bytes) -> int:
    """Where a record's encoded item starts."""
    return HEAD.size + int.from_bytes(blob[HEAD.size - 2:HEAD.size], "little")


class Hit(NamedTuple):
    """What the previous backup stored for an unchanged file."""

    refs: Refs
    sparse: Sparse
    xattrs: dict[str, bytes]


def _cache_keys(repo: Repository) -> tuple[bytes, bytes] | None:
    """(file key, name key) for an encrypted repository, None for an unencrypted one."""
    if repo.secrets is None:
        return None
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF
    both = HKDF(algorithm=hashes.SHA256(), length=64, salt=repo.config.repo_id, info=CACHE_INFO).derive(
        repo.secrets.enc_key)
    return both[:32], both[32:]


class FilesCache:
    def __init__(self, repo: Repository, group: str, root: Path | None = None) -> None:
        self._keys = _cache_keys(repo)
        digest = hashlib.blake2b(group.encode(), digest_size=12).hexdigest()
        folder = (root or cache_root()) / repo.config.repo_id.hex()
        self._plain_path: Path | None = None  # an older, unsealed cache of an encrypted repository
        if self._keys is not None:
            self._plain_path = folder / f"files-{digest}"
            digest = hashlib.blake2b(group.encode(), digest_size=12, key=self._keys[1]).hexdigest()
        self.path = folder / f"files-{digest}"
        self.repo = repo
        self.old: dict[str, bytes] = {}
        # records for the next cache: carried as they were, or (head packed, item) packed
        # later: the refs of a file just read are filled in as the pipeline stores its chunks
        self.new: dict[str, bytes | tuple[bytes, dict[str, Any]]] = {}
        self.started_ns = time.time_ns()
        self.hits = 0
        self.misses = 0
        self.previous: str | None = None  # the backup this cache was written after
        self._remembered = False  # whether ``new`` holds records still to be packed
        self._unpacked: list[str] = []
        self._loaded: tuple[int, int, int] | None = None  # (inode, size, mtime_ns) of the file read
        self._same = False  # the walk kept exactly the records loaded: no rewrite needed
        self._load()

    def _aad(self) -> bytes:
        return CACHE_INFO + self.repo.config.repo_id

    def _read(self) -> bytes:
        """The cache's msgpack: opened when sealed; b"" when there is none or it does not
        open (another key, damaged). Notes which file was read (``_loaded``)."""
        try:
            data, self._loaded = _read_identified(self.path)
        except FileNotFoundError:
            if self._plain_path is None:
                raise
            return self._plain_path.read_bytes()  # once, after an upgrade: save() deletes it
        return self._opened(data)

    def _opened(self, data: bytes) -> bytes:
        if self._keys is None:
            return data
        if not data.startswith(SEALED_MAGIC):
            return b""
        from cryptography.exceptions import InvalidTag
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM
        nonce = data[len(SEALED_MAGIC):len(SEALED_MAGIC) + NONCE_LEN]
        try:
            return AESGCM(self._keys[0]).decrypt(nonce, memoryview(data)[len(SEALED_MAGIC) + NONCE_LEN:],
                                                 self._aad())
        except (InvalidTag, ValueError):
            return b""

    def _sealer(self, out: BinaryIO) -> tuple[Callable[[bytes], None], Callable[[], None]]:
        """(write, finish): the file's bytes written streamed, sealed (magic, nonce, then
        AES-256-GCM's ciphertext and tag: the bytes one ``AESGCM.encrypt`` of the whole gives)."""
        if self._keys is None:
            return out.write, lambda: None
        from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
        nonce = os.urandom(NONCE_LEN)
        enc = Cipher(algorithms.AES(self._keys[0]), modes.GCM(nonce)).encryptor()
        enc.authenticate_additional_data(self._aad())
        out.write(SEALED_MAGIC + nonce)

        def finish() -> None:
            out.write(enc.finalize())
            out.write(enc.tag)
        return (lambda data: out.write(enc.update(data))), finish

    @property
    def _note_path(self) -> Path:
        return self.path.with_name(self.path.name + ".last")

    def _read_note(self) -> None:
        """``previous`` from the note an unchanged backup left, if it belongs to the file read."""
        if self._loaded is None:
            return
        try:
            note = msgpack.unpackb(self._opened(self._note_path.read_bytes()), raw=False)
        except (OSError, ValueError, msgpack.UnpackException, TypeError):
            return
        if isinstance(note, dict) and note.get("of") == list(self._loaded) and \
                isinstance(note.get("backup"), (str, type(None))):
            self.previous = note["backup"]

    def _load(self) -> None:
        try:
            data = self._read()
            obj = msgpack.unpackb(data, raw=False, strict_map_key=False, unicode_errors="surrogateescape")
            del data
            if isinstance(obj, dict) and obj.get("v") == VERSION and isinstance(obj.get("files"), dict):
                self.old = obj["files"]
                self.previous = obj.get("backup") if isinstance(obj.get("backup"), str) else None
                self._read_note()
            else:
                self._loaded = None
        except (OSError, ValueError, msgpack.UnpackException, TypeError):
            self.old = {}
            self._loaded = None

    def lookup(self, path: str, key: Key, check: bool = True) -> Hit | None:
        """The stored chunks (and sparse map, xattrs) of an unchanged file, or None.
        A hit is kept for the next backup's cache as it is. ``check``: only if every
        chunk is still in the repository (else the caller checks them:
        ``BackupSession.reuse_refs``)."""
        blob = self.old.get(path)
        try:
            packed = KEY.pack(*key)
        except struct.error:
            packed = b""
        if not isinstance(blob, bytes) or not packed or not blob.startswith(packed):
            self.misses += 1
            return None
        try:
            entry = msgpack.unpackb(items.entry_item_with_path(blob[_item_at(blob):], path), raw=False)["e"]
            refs, sparse, xattrs = entry.get("c", []), entry.get("sp"), entry.get("x", {})
        except (ValueError, TypeError, KeyError, msgpack.UnpackException):
            self.misses += 1
            return None
        if check:
            has = self.repo.has_chunk
            for c in refs:
                if not has(c[0]):
                    self.misses += 1
                    return None
        self.hits += 1
        self.new[path] = blob
        return Hit(refs, sparse, xattrs)

    def lookup_item(self, path: str, expect: bytes) -> tuple[Refs, bytes] | None:
        """An unchanged file's chunk refs and its encoded item as the previous backup
        stored it, when its record starts with ``expect`` (``head``); else None, nothing
        counted (the caller goes on with ``lookup``). On a hit the caller checks the refs
        (``BackupSession.reuse_refs``), then calls ``took`` (or ``lost``)."""
        blob = self.old.get(path)
        if blob is None or not blob.startswith(expect):
            return None
        try:
            encoded = items.entry_item_with_path(blob[len(expect):], path)
            return msgpack.unpackb(encoded, raw=False)["e"].get("c", []), encoded
        except (ValueError, TypeError, KeyError, AttributeError, msgpack.UnpackException):
            return None

    def lost(self, path: str, key: Key) -> Hit:
        """The record of a file ``lookup_item`` gave whose chunks are gone from the
        repository (gc): its sparse map and xattrs, to read it again; a miss."""
        hit = self.lookup(path, key, False)
        assert hit is not None, "lookup_item found it"
        self.hits -= 1
        self.misses += 1
        del self.new[path]
        return hit

    def took(self, path: str) -> None:
        """The item of ``lookup_item`` was stored: keep its record for the next cache."""
        self.hits += 1
        self.new[path] = self.old[path]

    def remember(self, path: str, key: Key, facts: Facts, item: dict[str, Any]) -> None:
        """Keep a file just read for the next backup: ``facts`` (mode, ids, names) and
        its ``item`` (encoded when packed: its refs are filled in as the chunks are
        stored), which the next backup takes over if they are the same (``lookup_item``)."""
        if self.started_ns - key[2] < RECENT_NS:
            return
        try:
            packed = head(key, facts)
        except struct.error:
            return  # a time, size or id out of range: not cached
        self.new[path] = (packed, item)
        self._remembered = True
        self._unpacked.append(path)

    def pack_later(self) -> Callable[[], None]:
        """What packs the records remembered so far: call it once their refs are complete
        (``BackupSession.after_items``), so that a first night's ~70k records do not
        sit in memory as lists."""
        paths, self._unpacked = self._unpacked, []

        def pack() -> None:
            new = self.new
            for path in paths:
                r = new.get(path)
                if isinstance(r, tuple):
                    new[path] = _pack_record(path, r)
        return pack

    def walk_done(self) -> None:
        """Nothing more is looked up: the previous records are dropped (those taken over
        live on in the next cache), so that the commit and ``save`` do not hold both.
        Notes whether the next cache is the one loaded, record for record (then ``save``
        does not rewrite it)."""
        # without ``remember``, every record of ``new`` is ``old``'s under the same path
        # (``lookup``, ``took``, ``carry``): as many of them means the same records
        self._same = self._loaded is not None and not self._remembered and len(self.new) == len(self.old)
        self.old = {}

    def carry(self, prefix: str) -> int:
        """Keep the records of every path under ``prefix`` for the next backup (a subtree
        reused without walking it); returns how many."""
        kept = {p: r for p, r in self.old.items() if p.startswith(prefix)}
        self.new.update(kept)
        return len(kept)

    def save(self, backup_id: str | None = None) -> str | None:
        """Write the cache of this backup (call after the commit; ``backup_id`` is kept
        as ``previous`` for the next one): 0600 in 0700 directories; a warning if it cannot be."""
        tmp = self.path.with_name(self.path.name + f".{os.getpid()}.tmp")
        try:
            for d in (self.path.parent.parent, self.path.parent):
                d.mkdir(mode=0o700, parents=True, exist_ok=True)
                os.chmod(d, 0o700)
            if self._same and self._loaded is not None and _stat_of(self.path) == self._loaded:
                note = msgpack.packb({"of": list(self._loaded), "backup": backup_id}, use_bin_type=True)
                self._write(tmp, self._note_path, lambda write: write(note))
                return None
            self._write(tmp, self.path, lambda write: _pack_streamed(write, self.new, backup_id))
            with contextlib.suppress(FileNotFoundError):
                self._note_path.unlink()  # a note about the file just replaced
            if self._plain_path is not None:
                with contextlib.suppress(FileNotFoundError):
                    self._plain_path.unlink()  # an older cache with paths in clear
            return None
        except OSError as e:  # only costs time next night (every file is read again), but say so
            with contextlib.suppress(OSError):
                tmp.unlink()
            return f"files cache {self.path} not written ({e.strerror or e}): the next backup reads every file"

    def _write(self, tmp: Path, target: Path, fill: Callable[[Callable[[bytes], None]], None]) -> None:
        """``target`` (0600) made whole from what ``fill`` writes, sealed, through ``tmp``."""
        with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as f:
            write, finish = self._sealer(f)
            fill(write)
            finish()
        os.replace(tmp, target)


PACK_PIECE = 1 << 20  # bytes packed (and sealed) at a time when the cache is written


def _pack_streamed(write: Callable[[bytes], None], new: dict[str, bytes | tuple[bytes, dict[str, Any]]],
                   backup_id: str | None) -> None:
    """``msgpack.packb({"v": VERSION, "files": new, "backup": backup_id})`` (records still
    to be packed packed first), byte for byte, written a piece at a time."""
    packer = msgpack.Packer(use_bin_type=True, unicode_errors="surrogateescape")
    pack = packer.pack
    # paths that are not UTF-8 (carried with surrogateescape) go as their raw bytes
    piece = [packer.pack_map_header(3), pack("v"), pack(VERSION), pack("files"), packer.pack_map_header(len(new))]
    size = 0
    for path, r in new.items():
        blob = r if isinstance(r, bytes) else _pack_record(path, r)
        piece.append(pack(path))
        piece.append(pack(blob))
        size += len(blob)
        if size >= PACK_PIECE:
            write(b"".join(piece))
            piece, size = [], 0
    piece += [pack("backup"), pack(backup_id)]
    write(b"".join(piece))


def _identity(st: os.stat_result) -> tuple[int, int, int]:
    """Which cache file this is: (inode, size, mtime_ns), what a note is tied to."""
    return st.st_ino, st.st_size, st.st_mtime_ns


def _stat_of(path: Path) -> tuple[int, int, int] | None:
    try:
        return _identity(os.stat(path))
    except OSError:
        return None


def _read_identified(path: Path) -> tuple[bytes, tuple[int, int, int]]:
    """``path``'s bytes and the identity of the file they were read from."""
    with open(path, "rb") as f:
        return f.read(), _identity(os.fstat(f.fileno()))


def _pack_record(path: str, r: tuple[bytes, dict[str, Any]]) -> bytes:
    """A remembered record as bytes (once its item's refs are complete); an item not
    shaped as expected is left out (the record then never hits)."""
    return r[0] + (items.entry_item_without_path(items.encode_item(r[1]), path) or b"")
