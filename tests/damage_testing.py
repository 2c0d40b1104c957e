"""Hand-damaged repositories, the same scenarios on a local directory and on S3
(tests/integration/test_damage_isolation.py, tests/s3/test_s3_damage.py): issue #18,
point 1. Each scenario takes the ``dedupe`` runner and the repository's location."""

from __future__ import annotations

import json
import os

from dedupe import api
from dedupe_testing import RunCli, assert_clean_error
from repo_format import layout


def _names(location: str, prefix: str) -> set[str]:
    return {path for path, _ in api.open_storage(location).list(prefix)}


def damage(location: str, path: str, at: int | None = None) -> None:
    """Flip one byte of a stored object (in the middle unless ``at``)."""
    storage = api.open_storage(location)
    data = bytearray(storage.get(path))
    i = len(data) // 2 if at is None else at
    data[i] ^= 0x01
    storage.delete(path)
    storage.put(path, bytes(data))


def _backup(dedupe: RunCli, group: str, data: bytes) -> str:
    return str(json.loads(dedupe("backup", "stream", group, "-", "--json", input=data).stdout)["id"])


def one_damaged_segment_is_isolated_and_repaired(dedupe: RunCli, location: str) -> None:
    dedupe("init")
    a_data, b_data = os.urandom(400_000), os.urandom(300_000)
    a = _backup(dedupe, "a", a_data)
    a_segments = _names(location, layout.INDEX_DIR)
    b = _backup(dedupe, "b", b_data)
    (a_segment,) = a_segments
    damage(location, a_segment)

    # everything intact keeps working
    listed = {x["id"] for x in json.loads(dedupe("list", "--json").stdout)}
    assert listed == {a, b}
    assert dedupe("restore", b, "--stdout").stdout == b_data
    # what needs the damaged segment says so, with the way out
    p = dedupe("restore", a, "--stdout", check=False)
    assert_clean_error(p, 21, "not in the index", "damaged", "dedupe repair index")
    # check names the segment and the backup it affects; gc refuses
    p = dedupe("check", check=False)
    assert p.returncode == 25
    out = p.stdout.decode()
    assert f"index segment {a_segment.rsplit('/', 1)[-1][:16]}" in out and a[:12] in out
    assert b[:12] not in out.split("backups lacking chunks:")[1].splitlines()[0]
    assert "dedupe repair index" in out
    assert dedupe("gc", check=False).returncode == 82

    # a new backup holding the lost chunks stores them again (never references them)
    c = _backup(dedupe, "c", a_data)
    assert dedupe("restore", c, "--stdout").stdout == a_data

    # repair index: from the packs' tables; then everything is whole again
    p = dedupe("repair", "index", "--dry-run", "--json")
    assert json.loads(p.stdout)["damaged_segments"] == [a_segment.rsplit("/", 1)[-1]]
    assert a_segment in _names(location, layout.INDEX_DIR)
    report = json.loads(dedupe("repair", "index", "--json").stdout)
    assert report["packs_indexed"] >= 1 and report["unreadable_packs"] == {}
    assert a_segment not in _names(location, layout.INDEX_DIR)
    assert dedupe("restore", a, "--stdout").stdout == a_data
    dedupe("check", "--read-data")
    dedupe("gc")
    for bid, data in ((a, a_data), (b, b_data), (c, a_data)):
        assert dedupe("restore", bid, "--stdout").stdout == data
    dedupe("check", "--read-data")


def damaged_pack_table_is_named_by_repair(dedupe: RunCli, location: str) -> None:
    """A segment and the table of its pack both damaged: repair indexes what it can and
    names the pack whose table it cannot read; nothing else is lost."""
    dedupe("init")
    a_data, b_data = os.urandom(200_000), os.urandom(200_000)
    a = _backup(dedupe, "a", a_data)
    (a_segment,) = _names(location, layout.INDEX_DIR)
    a_packs = _names(location, layout.DATA_DIR)
    b = _backup(dedupe, "b", b_data)
    damage(location, a_segment)
    for pack in a_packs:
        damage(location, pack, at=-3)  # inside the trailer's table length
    report = json.loads(dedupe("repair", "index", "--json").stdout)
    assert set(report["unreadable_packs"]) == {p.rsplit("/", 1)[-1] for p in a_packs}
    assert dedupe("restore", b, "--stdout").stdout == b_data
    p = dedupe("restore", a, "--stdout", check=False)
    assert p.returncode == 21


def damaged_manifest_is_isolated(dedupe: RunCli, location: str) -> None:
    """A damaged manifest: list shows the others (warning, exit 3), they restore, check
    names it, forget removes it, then gc runs again."""
    dedupe("init")
    a = _backup(dedupe, "a", os.urandom(100_000))
    b_data = os.urandom(100_000)
    b = _backup(dedupe, "b", b_data)
    damage(location, layout.manifest_path(a))
    p = dedupe("list", "--json", check=False)
    assert p.returncode == 3 and f"backup {a[:12]} left out" in p.stderr.decode()
    assert [x["id"] for x in json.loads(p.stdout)] == [b]
    assert dedupe("restore", b, "--stdout").stdout == b_data
    p = dedupe("check", check=False)
    assert p.returncode == 25 and f"backup {a[:12]}" in p.stdout.decode() and "damaged manifest" in p.stdout.decode()
    assert dedupe("gc", check=False).returncode == 82
    dedupe("forget", a)
    dedupe("gc")
    dedupe("check", "--read-data")
    assert dedupe("restore", b, "--stdout").stdout == b_data


# -- repair packs ----------------------------------------------------------------------------

def _pack_of(location: str, before: set[str]) -> str:
    (p,) = _names(location, layout.DATA_DIR) - before
    return p


def damaged_pack_is_salvaged(dedupe: RunCli, location: str) -> None:
    """One flipped byte in a blob of a pack: ``repair packs`` keeps every blob that
    verifies, drops the damaged one, names the backup that needs it, and a later backup
    of the same data stores the lost chunk again."""
    dedupe("init")
    a_data, b_data = os.urandom(6_000_000), os.urandom(300_000)
    a = _backup(dedupe, "a", a_data)
    a_pack = _pack_of(location, set())
    b = _backup(dedupe, "b", b_data)
    damage(location, a_pack)
    p = dedupe("check", "--read-data", check=False)
    assert p.returncode == 25 and a_pack.rsplit("/", 1)[-1][:12] in p.stdout.decode()

    # dry run: the same report, nothing changed
    before = _names(location, layout.DATA_DIR) | _names(location, layout.INDEX_DIR)
    p = dedupe("repair", "packs", "--dry-run", "--json", check=False)
    assert p.returncode == 3, p.stderr
    dry = json.loads(p.stdout)
    assert list(dry["damaged_packs"]) == [a_pack.rsplit("/", 1)[-1]] and len(dry["lost_chunks"]) == 1
    assert set(dry["backups_affected"]) == {a}
    assert _names(location, layout.DATA_DIR) | _names(location, layout.INDEX_DIR) == before

    p = dedupe("repair", "packs", "--json", check=False)
    assert p.returncode == 3 and "1 chunk(s) lost, needed by 1 backup(s)" in p.stderr.decode()
    report = json.loads(p.stdout)
    assert report["lost_chunks"] == dry["lost_chunks"] and report["chunks_salvaged"] >= 2
    assert set(report["backups_affected"]) == {a} and report["backups_affected"][a]["content_chunks"] == 1
    assert a_pack not in _names(location, layout.DATA_DIR)
    # the intact backup restores; the damaged one says which chunk it lacks
    assert dedupe("restore", b, "--stdout").stdout == b_data
    p = dedupe("restore", a, "--stdout", check=False)
    assert p.returncode == 21 and report["lost_chunks"][0][:16] in p.stderr.decode()
    # nothing damaged is left: a second run finds nothing; every pack reads clean
    p = dedupe("repair", "packs")
    assert "none is damaged" in p.stdout.decode()
    # self-healing: the same data backed up again stores the lost chunk, and a is whole
    _backup(dedupe, "a", a_data)
    assert dedupe("restore", a, "--stdout").stdout == a_data
    dedupe("check", "--read-data")


def missing_pack_is_dropped(dedupe: RunCli, location: str) -> None:
    """A deleted pack: every chunk of it is lost, the index no longer names it, and the
    backups that need it are named; the others are untouched."""
    dedupe("init")
    a_data, b_data = os.urandom(200_000), os.urandom(200_000)
    a = _backup(dedupe, "a", a_data)
    a_pack = _pack_of(location, set())
    b = _backup(dedupe, "b", b_data)
    api.open_storage(location).delete(a_pack)
    p = dedupe("repair", "packs", a_pack.rsplit("/", 1)[-1][:10], "--json", check=False)
    assert p.returncode == 3
    report = json.loads(p.stdout)
    assert report["damaged_packs"] == {a_pack.rsplit("/", 1)[-1]: "missing"} and report["new_packs"] == []
    assert set(report["backups_affected"]) == {a} and report["backups_affected"][a]["item_chunks"] == 1
    p = dedupe("check", check=False)
    assert p.returncode == 25 and a[:12] in p.stdout.decode() and "pack" not in p.stdout.decode().split("error:")[1]
    assert dedupe("restore", b, "--stdout").stdout == b_data
    # an unknown pack name is one line
    assert_clean_error(dedupe("repair", "packs", "ffffffffff", check=False), 22, "no indexed pack")
