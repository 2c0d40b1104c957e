"""Index segments (section 7), manifests (8), config (4), locks (10), headers (1.2)."""

from __future__ import annotations

import pytest

from repo_format import config, header, index, lock, manifest, pack
from repo_format.errors import FormatError, UnsupportedVersionError


def test_index_segment_round_trip() -> None:
    entries = [pack.PackEntry(bytes([i]) * 32, 8 + i * 10, 10, 20) for i in range(3)]
    seg = index.IndexSegment([index.PackRecord("ab" * 32, 1000, 60, entries)], supersedes=["cd" * 32])
    data = index.encode(seg)
    assert data[:4] == b"DDIX"
    assert index.decode(data, "i") == seg


def test_manifest_round_trip() -> None:
    m = manifest.Manifest(kind="stream", group="g/x", time_ns=123, host="h", run="ab" * 16, size=5,
                          items=[(b"\1" * 32, 7)], item_count=1, stream_b3=b"\2" * 32,
                          stats={"new_bytes": 5}, meta={"lxd": {"name": "c1"}}, tags=["t"])
    assert manifest.decode(manifest.encode(m), "m") == m


def test_repaired_manifest_round_trip_and_a_malformed_record_refused() -> None:
    """FORMAT 8.4: the optional ``repaired`` record round-trips; absent, it is None."""
    rec = {"of": "ab" * 32, "time_ns": 9, "lost": [["big.bin", 0, 1024], [b"\xff.bin", 5, 3], ["", 7, 2]],
           "lost_items": 1, "lost_item_chunks": 1}
    m = manifest.Manifest(kind="dir", group="g", time_ns=1, host="h", run="ab" * 16, size=5, items=[],
                          item_count=0, tags=["repaired"], repaired=rec)
    back = manifest.decode(manifest.encode(m), "m")
    assert back == m and back.repaired == rec
    assert manifest.decode(manifest.encode(manifest.Manifest(**{**m.__dict__, "repaired": None})), "m").repaired is None
    from repo_format import blob, msgpack_codec
    body = {"schema": 1, "kind": "stream", "group": "g", "time_ns": 1, "host": "h", "run": "r", "size": 0,
            "items": [], "item_count": 0, "repaired": 3}
    data = header.encode_header(header.MANIFEST_MAGIC, 1) + blob.seal(msgpack_codec.pack(body))
    with pytest.raises(FormatError, match="repaired"):
        manifest.decode(data, "m")


def test_manifest_unknown_fields_are_ignored_and_missing_ones_refused() -> None:
    from repo_format import blob, msgpack_codec
    body = {"schema": 1, "kind": "stream", "group": "g", "time_ns": 1, "host": "h", "run": "r", "size": 0,
            "items": [], "item_count": 0, "future_field": 42}
    data = header.encode_header(header.MANIFEST_MAGIC, 1) + blob.seal(msgpack_codec.pack(body))
    assert manifest.decode(data, "m").group == "g"
    del body["group"]
    data = header.encode_header(header.MANIFEST_MAGIC, 1) + blob.seal(msgpack_codec.pack(body))
    with pytest.raises(FormatError, match="group"):
        manifest.decode(data, "m")


def test_config_round_trip_and_newer_version() -> None:
    cfg = config.RepoConfig(repo_id=b"r" * 16, id_key=b"k" * 32, created_ns=5)
    data = config.encode(cfg)
    assert config.decode(data) == cfg
    newer = data[:4] + bytes([3]) + data[5:]
    with pytest.raises(UnsupportedVersionError, match="newer dedupe"):
        config.decode(newer)


def test_authenticated_config_vector_and_tampering() -> None:
    """FORMAT.md 4.4: version 2 with a MAC under a key derived from enc_key; any changed
    byte fails (as a decode error or as the MAC), a version 1 copy fails when required."""
    from repo_format.errors import FormatError
    enc_key = bytes(range(32))
    cfg = config.RepoConfig(repo_id=b"r" * 16, id_key=b"", features=(config.FEATURE_AEAD,), created_ns=5)
    data = config.encode(cfg, enc_key)
    assert data[:5] == b"DDCF\x02" and config.decode(data) == cfg
    assert config.authenticate(data, enc_key, required=True) is True
    assert config.mac_key(enc_key).hex() == __import__("blake3").blake3(
        enc_key, derive_key_context="dedupe 2026-12 config mac v2").hexdigest()
    for i in range(len(data)):
        bad = bytearray(data)
        bad[i] ^= 0x01
        with pytest.raises(FormatError):
            config.decode(bytes(bad))
            config.authenticate(bytes(bad), enc_key, required=True)
    with pytest.raises(config.ConfigNotAuthentic):
        config.authenticate(data, bytes(32), required=True)  # another repository's key
    v1 = config.encode(cfg)
    assert config.authenticate(v1, enc_key, required=False) is False
    with pytest.raises(config.ConfigNotAuthentic, match="not authenticated"):
        config.authenticate(v1, enc_key, required=True)


def test_config_with_unknown_mandatory_feature_is_refused() -> None:
    cfg = config.RepoConfig(repo_id=b"r" * 16, id_key=b"k" * 32, features=("aead-v9",))
    with pytest.raises(UnsupportedVersionError, match="aead-v9"):
        config.decode(config.encode(cfg))


def test_wrong_magic_is_not_ours() -> None:
    with pytest.raises(FormatError, match="not a dedupe"):
        header.decode_header(b"PK\3\4xxxxxx", header.CONFIG_MAGIC, (1,), "f")


def test_lock_round_trip() -> None:
    rec = lock.LockRecord(True, "h", 1, 2, "boot", 3, "gc")
    assert lock.decode(lock.encode(rec), "l") == rec
