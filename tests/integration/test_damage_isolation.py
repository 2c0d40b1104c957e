"""Issue #18, point 1, on a local repository: one damaged index segment no longer takes
the repository down; ``check`` names it with the backups it affects; ``repair index``
rebuilds the index from the packs' tables (the S3 twin: tests/s3/test_s3_damage.py)."""

from __future__ import annotations

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
