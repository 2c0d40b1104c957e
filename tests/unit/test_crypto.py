"""Blob sealing (FORMAT.md 5.3) and the key file's KDF: round trips, the per-thread
scratch buffer, tampering, and concurrent key derivations."""

from __future__ import annotations

import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from repo_format import blob, crypto, keys
from repo_format.errors import IntegrityError

KEY = bytes(range(32))
CID = b"\x11" * 32


@pytest.mark.parametrize("size", [0, 1, 100_000, crypto.SCRATCH_MAX - crypto.TAG_LEN, crypto.SCRATCH_MAX + 1])
def test_seal_open_round_trip(size: int) -> None:
    cipher = crypto.BlobCipher(KEY)
    data = os.urandom(size)
    sealed = blob.seal(data, 0, cipher, CID)
    assert len(sealed) == blob.HEADER_LEN + crypto.OVERHEAD + size
    assert blob.open_blob(sealed, "t", cipher, CID) == data
    assert blob.open_blob(memoryview(sealed), "t", cipher, CID) == data


def test_blobs_sealed_and_opened_on_many_threads_stay_apart() -> None:
    """Each thread's scratch buffer is its own: blobs of different sizes sealed and
    opened at once on several threads all come back byte for byte."""
    cipher = crypto.BlobCipher(KEY)
    inputs = [os.urandom(1000 + 7919 * i) for i in range(64)]

    def round_trip(data: bytes) -> bytes:
        return blob.open_blob(blob.seal(data, 3, cipher, CID), "t", cipher, CID)

    with ThreadPoolExecutor(4) as pool:
        assert list(pool.map(round_trip, inputs)) == inputs


def test_seal_writes_into_the_blob_and_keeps_no_buffer() -> None:
    """Sealing encrypts straight into the returned blob: no per-thread scratch buffer
    stays behind (a 4 MiB chunk sealed on each worker kept 4 MiB resident per thread),
    and blobs sealed one after another are independent objects."""
    def seal_on_a_thread() -> tuple[bytes, bool]:
        cipher = crypto.BlobCipher(KEY)
        sealed = blob.seal(os.urandom(3 << 20), 0, cipher, CID)
        return sealed, hasattr(crypto._local, "buf")

    with ThreadPoolExecutor(1) as pool:
        sealed, kept = pool.submit(seal_on_a_thread).result()
    assert not kept
    cipher = crypto.BlobCipher(KEY)
    a = cipher.seal(b"a" * 5000, b"", prefix=b"head")
    b = cipher.seal(b"b" * 5000, b"", prefix=b"head")
    assert a[:4] == b[:4] == b"head" and a[4:4 + crypto.SESSION_LEN] == b[4:4 + crypto.SESSION_LEN]
    assert cipher.open(memoryview(a)[4:], b"", "t") == b"a" * 5000
    assert cipher.open(memoryview(b)[4:], b"", "t") == b"b" * 5000


def test_plaintext_view_does_not_outlive_the_block() -> None:
    cipher = crypto.BlobCipher(KEY)
    sealed = cipher.seal(b"secret", b"aad")
    with cipher.opened(sealed, b"aad", "t") as plain:
        assert bytes(plain) == b"secret"
    with pytest.raises(ValueError):
        bytes(plain)


def test_open_returns_bytes_that_later_blobs_do_not_overwrite() -> None:
    cipher = crypto.BlobCipher(KEY)
    first = cipher.open(cipher.seal(b"a" * 5000, b""), b"", "t")
    cipher.open(cipher.seal(b"b" * 5000, b""), b"", "t")
    assert first == b"a" * 5000


@pytest.mark.parametrize("where", [0, crypto.SESSION_LEN, crypto.SESSION_LEN + 8, -1])
def test_tampered_payload_fails_authentication(where: int) -> None:
    cipher = crypto.BlobCipher(KEY)
    sealed = bytearray(cipher.seal(b"hello world", b"aad"))
    sealed[where] ^= 1
    with pytest.raises(IntegrityError, match="authentication failed"):
        cipher.open(sealed, b"aad", "t")


def test_wrong_context_and_truncation_are_refused() -> None:
    cipher = crypto.BlobCipher(KEY)
    sealed = cipher.seal(b"hello", b"aad")
    with pytest.raises(IntegrityError, match="authentication failed"):
        cipher.open(sealed, b"other", "t")
    with pytest.raises(IntegrityError, match="truncated"):
        cipher.open(sealed[:crypto.OVERHEAD - 1], b"aad", "t")


def test_key_files_open_on_several_threads_at_once() -> None:
    """Concurrent Argon2id derivations (cryptography 50 runs the lanes on OpenSSL's
    threads) hung forever or failed with a spurious MemoryError; keys serialises them."""
    params = {"t": 1, "m": 8192, "p": 4}
    secrets_ = keys.Secrets(os.urandom(32), os.urandom(32))
    data = keys.encode(secrets_, b"r" * 16, b"pw", params)
    results: list[keys.Secrets] = []

    def open_key() -> None:
        for _ in range(5):
            results.append(keys.decode(data, b"pw", "t")[0])

    threads = [threading.Thread(target=open_key, daemon=True) for _ in range(3)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 60
    for t in threads:
        t.join(timeout=max(0.0, deadline - time.monotonic()))
    assert not any(t.is_alive() for t in threads), "key derivations deadlocked"
    assert results == [secrets_] * 15
