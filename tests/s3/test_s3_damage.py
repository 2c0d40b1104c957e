"""Issue #18, point 1, on the real gateway: the scenarios of tests/damage_testing.py
(a damaged index segment isolated, reported and repaired; a damaged pack table named)."""

from __future__ import annotations

from pathlib import Path

import damage_testing
from dedupe_testing import RunCli


def test_one_damaged_segment_is_isolated_and_repaired_on_s3(dedupe: RunCli, s3_url: str) -> None:
    damage_testing.one_damaged_segment_is_isolated_and_repaired(dedupe, s3_url)


def test_repair_index_names_a_pack_whose_table_is_damaged_on_s3(dedupe: RunCli, s3_url: str) -> None:
    damage_testing.damaged_pack_table_is_named_by_repair(dedupe, s3_url)


def test_a_damaged_manifest_is_isolated_on_s3(dedupe: RunCli, s3_url: str) -> None:
    damage_testing.damaged_manifest_is_isolated(dedupe, s3_url)


def test_repair_packs_salvages_a_damaged_pack_on_s3(dedupe: RunCli, s3_url: str) -> None:
    damage_testing.damaged_pack_is_salvaged(dedupe, s3_url)


def test_repair_packs_drops_a_missing_pack_on_s3(dedupe: RunCli, s3_url: str) -> None:
    damage_testing.missing_pack_is_dropped(dedupe, s3_url)


def test_repair_backups_rewrites_a_backup_with_a_lost_piece_on_s3(dedupe: RunCli, s3_url: str,
                                                                  tmp_path: Path) -> None:
    damage_testing.repaired_backups_restore_what_is_intact(dedupe, s3_url, tmp_path)


def test_repair_backups_leaves_out_the_items_of_a_lost_item_chunk_on_s3(dedupe: RunCli, s3_url: str) -> None:
    damage_testing.lost_item_chunk_drops_its_items(dedupe, s3_url)
