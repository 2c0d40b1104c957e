"""The key file: the repository's secrets, sealed under a passphrase (FORMAT.md section 5.4).

Secrets: the 32-byte encryption key (blobs, section 5.3) and the 32-byte chunk-id
key (section 2). They are random, made at ``init``, and never change; the
passphrase only protects them, so changing it rewrites this file alone.

    header (8: DDKY, 1) | msgpack map:
      kdf        "argon2id"
      kdf_params {"t": iterations, "m": memory KiB, "p": lanes}
      salt       16 random bytes, new at every write
      repo_id    16 bytes: the repository this key belongs to
      sealed     AES-256-GCM(key = Argon2id(passphrase, salt), nonce = 12 zero bytes,
                             plaintext = msgpack {"enc_key", "id_key"},
                             aad = "dedupe key v1" + repo_id)
      check      BLAKE3-256 of the msgpack encoding of the fields above

The key-encryption key is new at every write (a new salt), so the zero nonce is
never reused under one key. ``check`` tells a damaged file (check fails) from a
wrong passphrase (check holds, authentication fails).
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from typing import Final

import blake3

from repo_format import header, msgpack_codec
from repo_format.errors import FormatError, IntegrityError

MAGIC: Final = b"DDKY"
VERSION: Final = 1
SUPPORTED_VERSIONS: Final = (1,)
_AAD: Final = b"dedupe key v1"
# Argon2id, as RFC 9106's second recommendation (64 MiB, 3 passes, 4 lanes): ~0.2 s here.
DEFAULT_KDF: Final = {"t": 3, "m": 64 * 1024, "p": 4}
# cryptography 50 (OpenSSL 4.0) computes the lanes on OpenSSL's threads, capped at the
# number of cores for the whole process: two derivations at once wait for each other's
# threads forever. One at a time, then.
_KDF_LOCK = threading.Lock()


class WrongPassphrase(IntegrityError):
    """The key file is intact but does not open with this passphrase."""

    exit_code = 16


class DamagedKeyFile(FormatError):
    exit_code = 17


@dataclass(frozen=True)
class Secrets:
    enc_key: bytes
    id_key: bytes
    config_mac: bool = False  # the config must carry a MAC (section 4.4): no downgrade to version 1


def _kek(passphrase: bytes, salt: bytes, p: dict[str, int]) -> bytes:
    # cryptography is imported here, where a key is used (see repo_format.crypto)
    from cryptography.hazmat.primitives.kdf.argon2 import Argon2id

    with _KDF_LOCK:
        return Argon2id(salt=salt, length=32, iterations=p["t"], lanes=p["p"], memory_cost=p["m"]).derive(passphrase)


def encode(secrets_: Secrets, repo_id: bytes, passphrase: bytes, kdf_params: dict[str, int] | None = None) -> bytes:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    params = dict(kdf_params or DEFAULT_KDF)
    salt = os.urandom(16)
    secret_map: dict[str, object] = {"enc_key": secrets_.enc_key, "id_key": secrets_.id_key}
    if secrets_.config_mac:
        secret_map["config_mac"] = True
    plain = msgpack_codec.pack(secret_map)
    sealed = AESGCM(_kek(passphrase, salt, params)).encrypt(bytes(12), plain, _AAD + repo_id)
    body = {"kdf": "argon2id", "kdf_params": params, "salt": salt, "repo_id": repo_id, "sealed": sealed}
    body["check"] = blake3.blake3(msgpack_codec.pack(body)).digest()
    return header.encode_header(MAGIC, VERSION) + msgpack_codec.pack(body)


def _decode_body(data: bytes, what: str) -> dict:  # type: ignore[type-arg]
    try:
        header.decode_header(data, MAGIC, SUPPORTED_VERSIONS, what)
        body = msgpack_codec.unpack_map(memoryview(data)[header.HEADER_LEN:], what,
                                        ("kdf", "kdf_params", "salt", "repo_id", "sealed", "check"))
    except FormatError as e:
        raise DamagedKeyFile(f"{what}: key file damaged ({e})") from None
    check = body.pop("check")
    if blake3.blake3(msgpack_codec.pack(body)).digest() != check:
        raise DamagedKeyFile(f"{what}: key file damaged (checksum mismatch)")
    if body["kdf"] != "argon2id":
        raise DamagedKeyFile(f"{what}: unknown key derivation {body['kdf']!r}")
    return body


def decode(data: bytes, passphrase: bytes, what: str) -> tuple[Secrets, bytes]:
    """Open a key file; returns the secrets and the repository id it belongs to."""
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    body = _decode_body(data, what)
    try:
        kek = _kek(passphrase, bytes(body["salt"]), body["kdf_params"])
        plain = AESGCM(kek).decrypt(bytes(12), bytes(body["sealed"]), _AAD + bytes(body["repo_id"]))
    except InvalidTag:
        raise WrongPassphrase(f"{what}: wrong passphrase") from None
    except (KeyError, TypeError, ValueError) as e:
        raise DamagedKeyFile(f"{what}: key file damaged ({e})") from None
    keys = msgpack_codec.unpack_map(plain, what, ("enc_key", "id_key"))
    return Secrets(bytes(keys["enc_key"]), bytes(keys["id_key"]), keys.get("config_mac") is True), bytes(body["repo_id"])
