"""Hand-damaged repositories, the same scenarios on a local directory and on S3
(tests/integration/test_damage_isolation.py, tests/s3/test_s3_damage.py): issue #18,
point 1. Each scenario takes the ``dedupe`` runner and the repository's location."""

from __future__ import annotations

import json
import os
from pathlib import Path

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


# -- repair backups --------------------------------------------------------------------------

def _tree(root: Path) -> dict[str, bytes]:
    files = {"a.txt": b"alpha\n" * 100, "sub/b.txt": os.urandom(5000), "sub/deep/c.bin": os.urandom(70_000),
             "big.bin": os.urandom(4_000_000)}
    for rel, data in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
        os.chmod(p, 0o640)
        os.utime(p, ns=(1_600_000_000_123_456_789, 1_600_000_000_123_456_789))
    return files


def first_chunk_of(location: str, backup_id: str, path: str) -> tuple[str, int]:
    """The pack and the middle byte of the first content chunk of ``path`` in a backup."""
    repo = api.open_repo(location)
    m = repo.load_manifest(backup_id)
    for entry, _ in api.tree_entries(repo, m):
        if entry.path == path:
            loc = repo.locate(bytes(entry.chunks[0][0]))
            return layout.pack_path(loc.pack), loc.offset + loc.length // 2
    raise AssertionError(f"{path} not in the backup")


def repaired_backups_restore_what_is_intact(dedupe: RunCli, location: str, tmp: Path) -> None:
    """A blob of one file damaged: ``repair packs`` drops it, ``repair backups`` rewrites
    the backup with that piece as zeros (named), ``check --read-data`` is clean once the
    original is forgotten, and the intact files restore byte for byte with their
    metadata; the damaged file keeps its size, zeros where the piece was."""
    dedupe("init")
    src = tmp / "src"
    files = _tree(src)
    d = str(json.loads(dedupe("backup", "dir", "t", str(src), "--json").stdout)["id"])
    s_data = os.urandom(300_000)
    s = _backup(dedupe, "s", s_data)
    pack_path, at = first_chunk_of(location, d, "big.bin")
    damage(location, pack_path, at=at)
    p = dedupe("repair", "packs", "--json", check=False)
    assert p.returncode == 3 and set(json.loads(p.stdout)["backups_affected"]) == {d}

    manifests = _names(location, layout.MANIFEST_DIR)
    dry = json.loads(dedupe("repair", "backups", "--dry-run", "--json").stdout)
    assert [b["original"] for b in dry["backups"]] == [d] and dry["backups"][0]["repaired"] is None
    assert _names(location, layout.MANIFEST_DIR) == manifests

    report = json.loads(dedupe("repair", "backups", "--json").stdout)
    (done,) = report["backups"]
    r = done["repaired"]
    assert done["original"] == d and not done["forgotten"] and report["checked"] == 2
    ((path, offset, length),) = done["lost"]
    assert path == "big.bin" and offset == 0 and length > 0
    listed = {x["id"]: x for x in json.loads(dedupe("list", "--json").stdout)}
    assert set(listed) == {d, s, r} and listed[r]["repaired"]["of"] == d and listed[d]["repaired"] is None
    assert "repaired" in listed[r]["tags"]
    assert "(repaired)" in dedupe("list").stdout.decode()
    shown = dedupe("show", r).stdout.decode()
    assert f"repaired:      from {d[:12]}" in shown and "big.bin bytes 0.." in shown
    # the original is kept (check still names it) until forgotten; --forget does that
    assert dedupe("check", check=False).returncode == 25
    again = json.loads(dedupe("repair", "backups", "--forget", "--json").stdout)
    assert [b["original"] for b in again["backups"]] == [d] and again["backups"][0]["forgotten"]
    assert d not in _names(location, layout.MANIFEST_DIR) and layout.manifest_path(r) in _names(
        location, layout.MANIFEST_DIR)
    dedupe("check", "--read-data")

    # restore: intact files byte for byte with metadata; the marked one as documented; exit 3
    out = tmp / "out"
    p = dedupe("restore", r, "--to-dir", str(out), check=False)
    assert p.returncode == 3 and f"backup {r[:12]} was repaired from {d[:12]}" in p.stderr.decode()
    assert "'big.bin'" in p.stderr.decode()
    for rel, data in files.items():
        got = (out / rel).read_bytes()
        st = (out / rel).stat()
        assert (st.st_mode & 0o7777, st.st_mtime_ns) == (0o640, 1_600_000_000_123_456_789), rel
        if rel == "big.bin":
            assert len(got) == len(data)
            assert got[:length] == bytes(length) and got[length:] == data[length:]
        else:
            assert got == data, rel
    p = dedupe("restore", r, "--to-file", str(tmp / "t.tar"), check=False)
    assert p.returncode == 3
    # other backups restore as before, exit 0
    assert dedupe("restore", s, "--stdout").stdout == s_data


def lost_item_chunk_drops_its_items(dedupe: RunCli, location: str) -> None:
    """A stream backup whose only pack is gone (its item chunk with it): the repaired
    backup has no items and an empty stream; it restores as such, with the warning."""
    dedupe("init")
    a = _backup(dedupe, "a", os.urandom(100_000))
    api.open_storage(location).delete(_pack_of(location, set()))
    dedupe("repair", "packs", check=False)
    (done,) = json.loads(dedupe("repair", "backups", "--forget", "--json").stdout)["backups"]
    assert done["original"] == a and done["lost_item_chunks"] == 1 and done["lost"] == []
    p = dedupe("restore", done["repaired"], "--stdout", check=False)
    assert p.returncode == 3 and p.stdout == b"" and "item(s) are missing" in p.stderr.decode()
    dedupe("check", "--read-data")
