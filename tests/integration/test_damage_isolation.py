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
