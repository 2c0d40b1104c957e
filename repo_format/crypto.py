"""Authenticated encryption of blob envelopes (FORMAT.md section 5.3).

Suite 1 is AES-256-GCM (hardware-accelerated on every x86-64 and ARMv8 server CPU;
measured 7.7 GB/s here against 3.1 GB/s for ChaCha20-Poly1305) with **session
keys**: each writer draws a random 16-byte session id, derives its own key with
HKDF-SHA256 from the repository's encryption key, and numbers its blobs with a
64-bit counter. A (key, nonce) pair therefore never repeats: session keys collide
with probability 2^-128, and within a session the counter only goes up.

Sealed payload: ``session id (16) | counter (8, LE) | ciphertext | tag (16)``;
nonce = counter (8, LE) + 4 zero bytes; associated data = the 12-byte envelope
header + the blob's context (the chunk id for chunks; the object kind and the
repository id for tables, segments and manifests), so a blob moved to another
chunk id, kind or repository does not open.

Speed: AES-GCM itself costs ~0.1 s per GB here; what costs is fresh memory (a page
fault per 4 KiB each time a new multi-megabyte bytes object is touched) and copies.
Sealing encrypts straight into the sealed blob (``encrypt_into``; the blob is a
``bytearray``): the ciphertext is written once, as an unencrypted blob's payload is
copied once, and no buffer stays behind. Opening decrypts into a per-thread scratch
buffer that stays mapped (``decrypt_into``), which the decompression then reads. The
AEAD call holds the GIL, but for ~0.4 ms per 4 MiB chunk.
"""

from __future__ import annotations

import itertools
import os
import struct
import threading
from contextlib import contextmanager
from typing import TYPE_CHECKING, Final, Iterator

from repo_format.errors import IntegrityError

# cryptography is imported where a key is used: an unencrypted repository's commands
# start without it (some 8 ms of imports)
if TYPE_CHECKING:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

SUITE_AES256_GCM: Final = 1
SUITE_NAMES: Final = {SUITE_AES256_GCM: "aes-256-gcm"}
SESSION_LEN: Final = 16
COUNTER = struct.Struct("<Q")
TAG_LEN: Final = 16
OVERHEAD: Final = SESSION_LEN + COUNTER.size + TAG_LEN  # 40 bytes per blob
_INFO: Final = b"dedupe blob key v1"
_NONCE_PAD: Final = b"\0\0\0\0"
SCRATCH_MAX: Final = 8 << 20  # larger blobs (big index segments) get a buffer of their own

_local = threading.local()


def _scratch(size: int) -> memoryview:
    """``size`` bytes of this thread's reusable buffer (grown to the largest blob seen,
    up to SCRATCH_MAX): decrypted plaintext lands in memory that is already mapped."""
    if size > SCRATCH_MAX:
        return memoryview(bytearray(size))
    buf: bytearray | None = getattr(_local, "buf", None)
    if buf is None or len(buf) < size:
        buf = _local.buf = bytearray(size)  # a new one: views of the old one may still be alive
    return memoryview(buf)[:size]


def derive_session_key(enc_key: bytes, session_id: bytes) -> bytes:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    return HKDF(algorithm=hashes.SHA256(), length=32, salt=session_id, info=_INFO).derive(enc_key)


class BlobCipher:
    """Seals and opens blob payloads under one repository encryption key."""

    suite = SUITE_AES256_GCM

    def __init__(self, enc_key: bytes, session_id: bytes | None = None) -> None:
        """``session_id`` is for test vectors only: a writer MUST use a fresh random one."""
        if len(enc_key) != 32:
            raise ValueError("encryption key must be 32 bytes")
        self._enc_key = enc_key
        self._session_id = session_id or os.urandom(SESSION_LEN)
        from cryptography.exceptions import InvalidTag
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        self._invalid_tag = InvalidTag
        self._aead = AESGCM(derive_session_key(enc_key, self._session_id))
        self._counter = itertools.count()  # thread-safe in CPython: each next() is atomic
        self._readers: dict[bytes, AESGCM] = {}

    def seal(self, plaintext: bytes | memoryview, aad: bytes, prefix: bytes = b"") -> bytearray:
        """``prefix`` + the sealed payload. The AEAD writes the ciphertext straight into
        the returned buffer: no copy of it, and no buffer kept between calls."""
        counter = COUNTER.pack(next(self._counter))
        start = len(prefix) + SESSION_LEN + COUNTER.size
        out = bytearray(start + len(plaintext) + TAG_LEN)
        out[:start] = b"".join((prefix, self._session_id, counter))
        with memoryview(out) as view:
            self._aead.encrypt_into(counter + _NONCE_PAD, plaintext, aad, view[start:])
        return out

    def _reader(self, session_id: bytes) -> AESGCM:
        aead = self._readers.get(session_id)
        if aead is None:
            if len(self._readers) > 4096:
                self._readers.clear()
            aead = self._readers[session_id] = type(self._aead)(derive_session_key(self._enc_key, session_id))
        return aead

    @contextmanager
    def opened(self, payload: bytes | memoryview, aad: bytes, what: str) -> Iterator[memoryview]:
        """The plaintext of a sealed payload, as a view of this thread's scratch buffer:
        valid inside the ``with`` block only (copy what must outlive it)."""
        payload = memoryview(payload)
        if len(payload) < OVERHEAD:
            raise IntegrityError(f"{what}: sealed blob truncated")
        aead = self._reader(bytes(payload[:SESSION_LEN]))
        nonce = bytes(payload[SESSION_LEN:SESSION_LEN + COUNTER.size]) + _NONCE_PAD
        out = _scratch(len(payload) - OVERHEAD)
        try:
            try:
                aead.decrypt_into(nonce, payload[SESSION_LEN + COUNTER.size:], aad, out)
            except self._invalid_tag:
                raise IntegrityError(f"{what}: authentication failed (damaged, tampered with, "
                                     f"moved from elsewhere, or another repository's)") from None
            yield out
        finally:
            out.release()

    def open(self, payload: bytes | memoryview, aad: bytes, what: str) -> bytes:
        with self.opened(payload, aad, what) as plain:
            return bytes(plain)
