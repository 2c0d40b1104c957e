"""``dedupe copy`` local -> S3 -> local: only missing chunks are sent, copies keep
deduplicating when the repositories share chunker parameters and id key, and
repositories that do not are copied by re-chunking."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import blake3
from conftest import RunCli


def _copy(dedupe: RunCli, source: str | Path, target: str | Path, *args: str) -> dict[str, Any]:
    out: dict[str, Any] = json.loads(dedupe("copy", "--to", str(target), *args, "--json", repo=source).stdout)
    return out


def _ids(dedupe: RunCli, repo: str | Path) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = json.loads(dedupe("list", "--json", repo=repo).stdout)
    return rows


def test_copy_local_to_s3_to_local(dedupe: RunCli, s3_url: str, tmp_path: Path) -> None:
    local, back = tmp_path / "local", tmp_path / "back"
    base = blake3.blake3(b"copy base").digest(length=6_000_000)  # seeded: stable cut points
    dedupe("init", repo=local)
    dedupe("backup", "stream", "db/a", "-", input=base, repo=local)
    dedupe("backup", "stream", "db/b", "-", input=b"other" * 100_000, repo=local)
    dedupe("init", "--copy-params-from", str(local), repo=s3_url)

    first = _copy(dedupe, local, s3_url)
    assert len(first["copied"]) == 2 and not first["rechunked"]
    assert first["raw_bytes_sent"] >= len(base)
    again = _copy(dedupe, local, s3_url)
    assert again["copied"] == [] and len(again["skipped"]) == 2 and again["chunks_sent"] == 0

    # The next night: most of the data is the same; only the new chunks travel.
    night2 = base[:5_000_000] + blake3.blake3(b"copy night2").digest(length=1_000_000)
    n2 = json.loads(dedupe("backup", "stream", "db/a", "-", "--json", input=night2, repo=local).stdout)
    inc = _copy(dedupe, local, s3_url, n2["id"])
    assert [c["source"] for c in inc["copied"]] == [n2["id"]]
    # exactly what the night added to the source travels, far less than the backup's size
    assert inc["raw_bytes_sent"] <= n2["new_bytes"] < len(night2) and inc["chunks_present"] > 0

    # And back, only one group, to a third repository that shares the parameters.
    dedupe("init", "--copy-params-from", s3_url, repo=back)
    out = _copy(dedupe, s3_url, back, "--group", "db/a")
    assert len(out["copied"]) == 2
    rows = _ids(dedupe, back)
    assert [r["group"] for r in rows] == ["db/a", "db/a"]
    for row, data in zip(rows, (base, night2)):
        assert dedupe("restore", row["id"], "--stdout", repo=back).stdout == data
    for repo in (s3_url, back):
        assert json.loads(dedupe("check", "--read-data", "--json", repo=repo).stdout)["ok"]
    src = {(r["group"], r["time_ns"], r["size"]) for r in _ids(dedupe, local)}
    assert {(r["group"], r["time_ns"], r["size"]) for r in _ids(dedupe, s3_url)} == src


def test_copy_between_unrelated_repositories_rechunks(dedupe: RunCli, s3_url: str, tmp_path: Path) -> None:
    local, other = tmp_path / "local", tmp_path / "other"
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "f").write_bytes(os.urandom(700_000))
    (tree / "g").write_bytes(b"g" * 10)
    data = os.urandom(2_500_000)
    dedupe("init", repo=s3_url)
    dedupe("backup", "stream", "s", "-", input=data, repo=s3_url)
    dedupe("backup", "dir", "d", str(tree), repo=s3_url)
    dedupe("init", repo=local)  # its own id key
    out = _copy(dedupe, s3_url, local)
    assert out["rechunked"] and len(out["copied"]) == 2
    rows = _ids(dedupe, local)
    assert dedupe("restore", rows[0]["id"], "--stdout", repo=local).stdout == data
    dedupe("restore", rows[1]["id"], "--to-dir", str(other), repo=local)
    assert (other / "f").read_bytes() == (tree / "f").read_bytes()
    assert _copy(dedupe, s3_url, local)["skipped"] == [r["id"] for r in _ids(dedupe, s3_url)]
    assert json.loads(dedupe("check", "--read-data", "--json", repo=local).stdout)["ok"]


def test_copy_refuses_the_same_repository(dedupe: RunCli, s3_url: str) -> None:
    from conftest import assert_clean_error
    dedupe("init", repo=s3_url)
    assert_clean_error(dedupe("copy", "--to", s3_url, repo=s3_url, check=False), 2, "source repository itself")


def test_unencrypted_copies_send_blobs_as_they_are(dedupe: RunCli, s3_url: str, tmp_path: Path) -> None:
    """Neither repository encrypted: blobs travel as stored (no recompression) and the
    copied manifest is byte for byte the same, so the backup keeps its id."""
    local = tmp_path / "plain"
    dedupe("init", "--encryption", "none", repo=local)
    data = os.urandom(1_000_000) + bytes(3_000_000)
    bid = json.loads(dedupe("backup", "stream", "g", "-", "--json", input=data, repo=local).stdout)["id"]
    dedupe("init", "--encryption", "none", "--copy-params-from", str(local), repo=s3_url)
    out = _copy(dedupe, local, s3_url)
    assert out["copied"] == [{"source": bid, "target": bid}]
    shown = json.loads(dedupe("show", bid, "--json", repo=local).stdout)
    assert out["bytes_sent"] == shown["stored_bytes"]  # the stored (compressed) blobs, not recompressed
    assert dedupe("restore", bid, "--stdout", repo=s3_url).stdout == data


def test_damaged_source_chunk_stops_the_copy_before_commit(dedupe: RunCli, s3_url: str, tmp_path: Path) -> None:
    """Every chunk is verified as it is read from the source: a damaged one ends the
    copy with the damage named, and the target gets no backup."""
    from conftest import assert_clean_error
    local = tmp_path / "local"
    dedupe("init", repo=local)
    dedupe("backup", "stream", "g", "-", input=os.urandom(3_000_000), repo=local)
    dedupe("init", "--copy-params-from", str(local), repo=s3_url)
    (pack,) = [p for p in (local / "data").rglob("*") if p.is_file()]
    data = bytearray(pack.read_bytes())
    data[len(data) // 3] ^= 0x01
    pack.write_bytes(bytes(data))
    assert_clean_error(dedupe("copy", "--to", s3_url, repo=local, check=False), 20, "chunk")
    assert _ids(dedupe, s3_url) == []
