"""The pure parts of direct LXD reads: undoing the idmap shift, index.yaml as LXD
writes it, the backup.yaml rewrite (dedupe.lxd.direct)."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest

from dedupe.entries import FILE, Entry
from dedupe.lxd.direct import index
from dedupe.idmap import IdMap, IdmapError

ARTIFACTS = Path("/work/shared/reference/lxd-artifacts")
SHIFT = json.dumps([{"Isuid": True, "Isgid": False, "Hostid": 100000, "Nsid": 0, "Maprange": 65536},
                    {"Isuid": False, "Isgid": True, "Hostid": 100000, "Nsid": 0, "Maprange": 65536},
                    {"Isuid": True, "Isgid": True, "Hostid": 300000, "Nsid": 70000, "Maprange": 10}])


def acl(entries: list[tuple[int, int, int]]) -> bytes:
    return struct.pack("<I", 2) + b"".join(struct.pack("<HHI", *e) for e in entries)


def test_ids_are_unshifted_range_by_range_and_unmapped_ids_kept() -> None:
    m = IdMap.parse(SHIFT)
    assert (m.uid(100000), m.uid(101000), m.gid(102000), m.uid(300003), m.gid(300009)) == (0, 1000, 2000, 70003, 70009)
    assert (m.uid(0), m.uid(165536), m.gid(300010)) == (0, 165536, 300010)  # host-owned: as they are
    assert not IdMap.parse("[]") and not IdMap.parse(None) and not IdMap.parse("")
    with pytest.raises(IdmapError):
        IdMap.parse('[{"Isuid": true}]')


def test_acl_user_and_group_entries_and_v3_capability_rootid_are_unshifted() -> None:
    m = IdMap.parse(SHIFT)
    e = Entry(path="rootfs/x", type=FILE, uid=101000, gid=102000, xattrs={
        "system.posix_acl_access": acl([(0x01, 6, 0xFFFFFFFF), (0x02, 6, 100033), (0x08, 4, 100044),
                                        (0x10, 6, 0xFFFFFFFF)]),
        "system.posix_acl_default": acl([(0x02, 7, 100001)]),
        "security.capability": struct.pack("<IIIIII", 0x03000000, 1 << 13, 0, 0, 0, 100000),
        "user.other": b"\x01\x02"})
    m.unshift_entry(e)
    assert (e.uid, e.gid) == (1000, 2000)
    assert e.xattrs["system.posix_acl_access"] == acl([(0x01, 6, 0xFFFFFFFF), (0x02, 6, 33), (0x08, 4, 44),
                                                      (0x10, 6, 0xFFFFFFFF)])
    assert e.xattrs["system.posix_acl_default"] == acl([(0x02, 7, 1)])
    assert struct.unpack("<IIIIII", e.xattrs["security.capability"])[5] == 0
    assert e.xattrs["user.other"] == b"\x01\x02"
    v2 = struct.pack("<IIIII", 0x02000000, 1, 0, 0, 0)
    assert m.unshift_caps(v2) == v2  # no rootid in v2
    assert m.unshift_acl(b"junk") == b"junk"


def test_instance_index_is_lxds_header_then_backup_yaml_indented() -> None:
    """Against a real export's index.yaml and backup.yaml (lxd-facts.md 2.2)."""
    if not (ARTIFACTS / "final-index.yaml").exists():
        pytest.skip("the LXD artifacts of the development workspace are not here")
    backup_yaml = (ARTIFACTS / "final-backup.yaml").read_bytes()
    made = index.instance_index("c1", "dir", "default", ["snap0"], backup_yaml)
    assert made == (ARTIFACTS / "final-index.yaml").read_bytes()
    assert index.snapshot_names(backup_yaml) == ["snap0"]


def test_no_snapshots_key_without_snapshots_and_quoting_as_yaml_v2() -> None:
    head = index.header("true", "btrfs", "p1", [], "container").decode()
    assert "snapshots" not in head and head.startswith('name: "true"\n')
    assert [index.scalar(v) for v in ("c1", "", "1", "0001-01-01T00:00:00Z", "a b", "yes")] == \
        ["c1", '""', '"1"', "0001-01-01T00:00:00Z", '"a b"', '"yes"']


def test_volume_index_as_lxd_writes_it() -> None:
    record = {"config": {}, "description": "", "name": "vol1", "type": "custom", "used_by": ["/1.0/x"],
              "location": "none", "content_type": "filesystem", "project": "default",
              "created_at": "0001-01-01T00:00:00Z"}
    snaps = [{"description": "", "expires_at": "0001-01-01T00:00:00Z", "name": "vol1/vsnap0", "config": {},
              "content_type": "filesystem", "created_at": "0001-01-01T00:00:00Z"}]
    made = index.volume_index(record, snaps, "dir", "default")
    if (ARTIFACTS / "custom-volume-index.yaml").exists():
        assert made == (ARTIFACTS / "custom-volume-index.yaml").read_bytes()
    assert b"- vsnap0\n" in made and b"  - description: \"\"\n    expires_at:" in made


def test_unshifted_backup_yaml_says_no_shift_everywhere() -> None:
    text = (b"container:\n  config:\n    volatile.last_state.idmap: '[{\"Isuid\":true}]'\n"
            b"  expanded_config:\n    volatile.last_state.idmap: '[{\"Isuid\":true}]'\n"
            b"snapshots:\n- config:\n    volatile.last_state.idmap: '[x]'\n  name: s1\n- name: \"2\"\n")
    out = index.unshifted_backup_yaml(text)
    assert out.count(b"volatile.last_state.idmap: '[]'") == 3 and b"Isuid" not in out
    assert index.snapshot_names(out) == ["s1", "2"]
