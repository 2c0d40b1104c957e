"""The repository config (FORMAT.md section 4)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final

import blake3

from repo_format import header, msgpack_codec
from repo_format.errors import FormatError, UnsupportedVersionError
from repo_format.ids import ID_KEY_LEN, ID_SCHEME

VERSION: Final = 1  # an unencrypted repository's config (nothing to authenticate it with)
VERSION_MAC: Final = 2  # an encrypted repository's: the same map plus ``mac`` (section 4.4)
SUPPORTED_VERSIONS: Final = (1, 2)
MAC_CONTEXT: Final = "dedupe 2026-12 config mac v2"  # BLAKE3 derive_key context (section 4.4)
# Features a reader must understand to use the repository (section 4.3).
FEATURE_AEAD: Final = "aead-1"  # blobs sealed with suite 1; secrets in the key file (sections 5.3, 5.4)
KNOWN_FEATURES: Final = frozenset({FEATURE_AEAD})


@dataclass(frozen=True)
class ChunkerParams:
    """FastCDC 2020 parameters (section 4.2). Fixed for the life of a repository."""

    min_size: int
    avg_size: int
    max_size: int
    normalization: int = 1
    seed: int = 0

    def to_list(self) -> list[int]:
        return [self.min_size, self.avg_size, self.max_size, self.normalization, self.seed]

    @classmethod
    def from_list(cls, v: Any, what: str, fastcdc: bool = True) -> ChunkerParams:
        """``fastcdc``: the content chunker, held to FastCDC's ranges; the item chunker
        (min, avg and max only, section 9.1) to ``64 <= min <= avg <= max <= 16 MiB``."""
        if not (isinstance(v, list) and len(v) == 5 and all(isinstance(x, int) for x in v)):
            raise FormatError(f"{what}: chunker parameters malformed")
        p = cls(*v)
        if not (p.in_range() if fastcdc else 64 <= p.min_size <= p.avg_size <= p.max_size <= 16 << 20):
            raise FormatError(f"{what}: chunker parameters out of range {p.to_list()} (section 4.2: "
                              f"64 <= min <= 1 MiB, 256 <= avg <= 4 MiB, 1 KiB <= max <= 16 MiB, min <= avg <= max, "
                              f"normalization 0 to 3, 0 <= seed < 2^63)")
        return p

    def in_range(self) -> bool:
        """Section 4.2's ranges: the ones FastCDC 2020 (pyfastcdc) can cut with."""
        return (64 <= self.min_size <= 1 << 20 and 256 <= self.avg_size <= 4 << 20
                and 1024 <= self.max_size <= 16 << 20 and self.min_size <= self.avg_size <= self.max_size
                and 0 <= self.normalization <= 3 and 0 <= self.seed < 1 << 63)


# Chosen by measurement: benchmarks/RESULTS.md, "Chunker parameters".
DEFAULT_CHUNKER: Final = ChunkerParams(min_size=256 << 10, avg_size=1 << 20, max_size=4 << 20)
# Item streams (manifest metadata) use smaller chunks so that a changed entry
# rewrites little metadata (section 9.1).
DEFAULT_ITEM_CHUNKER: Final = ChunkerParams(min_size=16 << 10, avg_size=64 << 10, max_size=256 << 10)


@dataclass(frozen=True)
class RepoConfig:
    repo_id: bytes
    id_key: bytes  # empty when encrypted: the key file holds it
    chunker: ChunkerParams = DEFAULT_CHUNKER
    item_chunker: ChunkerParams = DEFAULT_ITEM_CHUNKER
    id_scheme: str = ID_SCHEME
    features: tuple[str, ...] = ()
    created_ns: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def encrypted(self) -> bool:
        return FEATURE_AEAD in self.features


def mac_key(enc_key: bytes) -> bytes:
    """The config's MAC key, derived from the repository's encryption key (section 4.4)."""
    return blake3.blake3(enc_key, derive_key_context=MAC_CONTEXT).digest()


def _mac(head: bytes, body: dict[str, Any], enc_key: bytes) -> bytes:
    return blake3.blake3(head + msgpack_codec.pack(body), key=mac_key(enc_key)).digest()


def encode(cfg: RepoConfig, enc_key: bytes | None = None) -> bytes:
    """Version 1 without ``enc_key``; version 2, authenticated, with it."""
    body = {
        "repo_id": cfg.repo_id,
        "id_scheme": cfg.id_scheme,
        "id_key": cfg.id_key,
        "chunker": cfg.chunker.to_list(),
        "item_chunker": cfg.item_chunker.to_list(),
        "features": list(cfg.features),
        "created_ns": cfg.created_ns,
        **cfg.extra,
    }
    if enc_key is None:
        return header.encode_header(header.CONFIG_MAGIC, VERSION) + msgpack_codec.pack(body)
    head = header.encode_header(header.CONFIG_MAGIC, VERSION_MAC)
    body["mac"] = _mac(head, body, enc_key)
    return head + msgpack_codec.pack(body)


def authenticate(data: bytes, enc_key: bytes, required: bool, what: str = "config") -> bool:
    """Check a config's MAC with the repository's key (section 4.4): True for a version 2
    config whose MAC holds; False for a version 1 config (none), which is an error when
    ``required`` (the key file says this repository's config is authenticated)."""
    version = data[4] if len(data) > 4 else 0
    if version < VERSION_MAC:
        if required:
            raise ConfigNotAuthentic(f"{what}: not authenticated (version {version}), but this repository's key "
                                     f"says it must be: replaced by someone who can write the storage")
        return False
    import hmac  # here, not at start: the command line loads only what it needs (tests/unit/test_layers.py)

    body = msgpack_codec.unpack_map(memoryview(data)[header.HEADER_LEN:], what, ("mac",))
    mac = body.pop("mac")
    if not (isinstance(mac, bytes) and hmac.compare_digest(mac, _mac(bytes(data[:header.HEADER_LEN]), body, enc_key))):
        raise ConfigNotAuthentic(f"{what}: does not match its MAC: changed (by someone who can write the storage) "
                                 f"or damaged; refusing to use it")
    return True


class ConfigNotAuthentic(FormatError):
    """An encrypted repository's config fails its MAC, or lacks one it must have."""


_REQUIRED = ("repo_id", "id_scheme", "id_key", "chunker", "item_chunker", "features")


def decode(data: bytes, what: str = "config") -> RepoConfig:
    header.decode_header(data, header.CONFIG_MAGIC, SUPPORTED_VERSIONS, what)
    body = msgpack_codec.unpack_map(memoryview(data)[header.HEADER_LEN:], what, _REQUIRED)
    unknown = [f for f in body["features"] if f not in KNOWN_FEATURES]
    if unknown:
        raise UnsupportedVersionError(
            f"{what}: repository needs features this dedupe does not have: {', '.join(map(str, unknown))}")
    if body["id_scheme"] != ID_SCHEME:
        raise UnsupportedVersionError(f"{what}: unknown chunk id scheme {body['id_scheme']!r}")
    id_len = 0 if FEATURE_AEAD in body["features"] else ID_KEY_LEN
    if not isinstance(body["id_key"], bytes) or len(body["id_key"]) != id_len:
        raise FormatError(f"{what}: id key malformed")
    extra = {k: v for k, v in body.items() if k not in _REQUIRED and k not in ("created_ns", "mac")}
    return RepoConfig(
        repo_id=bytes(body["repo_id"]), id_key=bytes(body["id_key"]),
        chunker=ChunkerParams.from_list(body["chunker"], what),
        item_chunker=ChunkerParams.from_list(body["item_chunker"], what, fastcdc=False),
        id_scheme=body["id_scheme"], features=tuple(body["features"]),
        created_ns=int(body.get("created_ns", 0)), extra=extra,
    )
