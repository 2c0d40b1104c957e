"""Issue #18, point 1, on a local repository: one damaged index segment no longer takes
the repository down; ``check`` names it with the backups it affects; ``repair index``
rebuilds the index from the packs' tables; ``repair packs`` salvages damaged packs and
``repair backups`` rewrites the backups that lost chunks (the S3 twin:
tests/s3/test_s3_damage.py)."""

from __future__ import annotations

import json
from pathlib import Path

import damage_testing
from dedupe_testing import RunCli


def test_one_damaged_segment_is_isolated_and_repaired(dedupe: RunCli, repo_path: Path) -> None:
    damage_testing.one_damaged_segment_is_isolated_and_repaired(dedupe, str(repo_path))


def test_repair_index_names_a_pack_whose_table_is_damaged(dedupe: RunCli, repo_path: Path) -> None:
    damage_testing.damaged_pack_table_is_named_by_repair(dedupe, str(repo_path))


def test_a_damaged_manifest_is_isolated(dedupe: RunCli, repo_path: Path) -> None:
    damage_testing.damaged_manifest_is_isolated(dedupe, str(repo_path))


def test_repair_packs_salvages_a_damaged_pack(dedupe: RunCli, repo_path: Path) -> None:
    damage_testing.damaged_pack_is_salvaged(dedupe, str(repo_path))


def test_repair_packs_drops_a_missing_pack(dedupe: RunCli, repo_path: Path) -> None:
    damage_testing.missing_pack_is_dropped(dedupe, str(repo_path))


def test_repair_backups_rewrites_a_backup_with_a_lost_piece(dedupe: RunCli, repo_path: Path, tmp_path: Path) -> None:
    damage_testing.repaired_backups_restore_what_is_intact(dedupe, str(repo_path), tmp_path)


def test_repair_backups_leaves_out_the_items_of_a_lost_item_chunk(dedupe: RunCli, repo_path: Path) -> None:
    damage_testing.lost_item_chunk_drops_its_items(dedupe, str(repo_path))


def test_repair_packs_and_backups_refuse_while_an_index_segment_is_damaged(dedupe: RunCli, repo_path: Path) -> None:
    """Chunks of a damaged segment only look lost: rewriting backups then would zero data
    ``repair index`` brings back."""
    from dedupe_testing import assert_clean_error
    dedupe("init")
    dedupe("backup", "stream", "a", "-", input=b"x" * 1000)
    (segment,) = (p for p, _ in damage_testing.api.open_storage(str(repo_path)).list("index/"))
    damage_testing.damage(str(repo_path), segment)
    assert_clean_error(dedupe("repair", "backups", check=False), 82, "repair index")
    assert_clean_error(dedupe("repair", "packs", check=False), 82, "repair index")
    dedupe("repair", "index")
    assert "none is damaged" in dedupe("repair", "packs").stdout.decode()
    assert json.loads(dedupe("repair", "backups", "--json").stdout)["backups"] == []


def test_a_repaired_tar_backup_restores_the_same_tar_with_zeros_in_the_lost_piece(
        dedupe: RunCli, repo_path: Path, tmp_path: Path) -> None:
    """Zeros keep the tar whole: the same length, every byte outside the lost piece as it
    was, so the archive still lists and extracts (the damaged member with zeros)."""
    import io
    import os
    import tarfile
    from repo_format import layout
    dedupe("init")
    buf = io.BytesIO()
    members = {"small.txt": b"hello\n" * 50, "big.bin": os.urandom(3_000_000)}
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size, info.mtime = len(data), 1_600_000_000
            tar.addfile(info, io.BytesIO(data))
    original = buf.getvalue()
    t = json.loads(dedupe("backup", "tar", "t", "-", "--json", input=original).stdout)["id"]
    pack_path, at = damage_testing.first_chunk_of(str(repo_path), t, "big.bin")
    damage_testing.damage(str(repo_path), pack_path, at=at)
    assert dedupe("repair", "packs", check=False).returncode == 3
    (done,) = json.loads(dedupe("repair", "backups", "--forget", "--json").stdout)["backups"]
    ((path, offset, length),) = done["lost"]
    assert (path, offset) == ("big.bin", 0)
    p = dedupe("restore", done["repaired"], "--stdout", check=False)
    assert p.returncode == 3 and "big.bin" in p.stderr.decode()
    got = p.stdout
    assert len(got) == len(original)
    start = original.index(members["big.bin"][:64])
    assert got[:start] == original[:start] and got[start + length:] == original[start + length:]
    assert got[start:start + length] == bytes(length)
    with tarfile.open(fileobj=io.BytesIO(got)) as tar:
        assert tar.extractfile("small.txt").read() == members["small.txt"]  # type: ignore[union-attr]
    assert layout.manifest_path(t) not in {p for p, _ in damage_testing.api.open_storage(str(repo_path)).list("manifests/")}
    dedupe("check", "--read-data")
