"""LXD backups as the instance sees them: path mapping and the idmap (dedupe.restore.instance_view)."""

from __future__ import annotations

import json

import pytest

from dedupe.entries import Entry
from dedupe.idmap import IdMap
from dedupe.restore.instance_view import PathNotFound, UnknownSnapshot, is_raw, view_of

IDMAP = json.dumps([{"Isuid": True, "Isgid": False, "Hostid": 100000, "Nsid": 0, "Maprange": 65536},
                    {"Isuid": False, "Isgid": True, "Hostid": 200000, "Nsid": 0, "Maprange": 65536}])


def meta(kind: str = "instance", idmap: str = IDMAP, snapshots: tuple[str, ...] = ("snap0",)) -> dict[str, object]:
    return {"lxd": {"kind": kind, "name": "c1", "snapshots": list(snapshots),
                    "record": {"config": {"volatile.last_state.idmap": idmap}}}}


def test_paths_map_to_the_right_root() -> None:
    v = view_of(meta(), ["/etc/hosts"])
    assert v is not None and v.to_entry("/etc/hosts") == "backup/container/rootfs/etc/hosts"
    assert v.to_entry("etc//hosts/") == "backup/container/rootfs/etc/hosts"
    assert v.shown("backup/container/rootfs/etc") == "/etc" and v.shown("backup/container/rootfs") == "/"
    s = view_of(meta(), ["/etc"], snapshot="snap0")
    assert s is not None and s.to_entry("/etc") == "backup/snapshots/snap0/rootfs/etc"
    vol = view_of(meta("volume"), ["/data"], snapshot="snap0")
    assert vol is not None and vol.to_entry("/data") == "backup/volume-snapshots/snap0/data"
    raw = view_of(meta(), ["backup/container/rootfs/etc"])
    assert raw is not None and raw.root is None and raw.to_entry("backup/container/rootfs/etc") == \
        "backup/container/rootfs/etc"
    assert view_of({}, ["/etc"]) is None
    assert is_raw("backup/x") and not is_raw("/backup/x") and not is_raw("backupx")
    with pytest.raises(UnknownSnapshot, match="snap0"):
        view_of(meta(), ["/etc"], snapshot="nope")
    with pytest.raises(PathNotFound, match="not both"):
        view_of(meta(), ["/etc", "backup/index.yaml"])


def test_owners_of_a_shifted_root_are_mapped_back_and_an_unshifted_one_kept() -> None:
    v = view_of(meta(), ["/"])
    assert v is not None
    root = Entry("backup/container/rootfs", "d", uid=100000, gid=200000)
    v.note(root)
    assert (v.owners(root).uid, v.owners(root).gid) == (0, 0)
    f = Entry("backup/container/rootfs/home/u/x", "f", uid=101000, gid=202000, uname="host", gname="host")
    assert (v.owners(f).uid, v.owners(f).gid, v.owners(f).uname) == (1000, 2000, "")
    outside = Entry("backup/container/rootfs/x", "f", uid=5, gid=5)  # not in the map: as stored
    assert v.owners(outside).uid == 5
    # a snapshot stored unshifted (a direct read): its ids stay, --numeric-host-ids shifts them
    snap = Entry("backup/snapshots/snap0/rootfs", "d", uid=0, gid=0)
    v.note(snap)
    g = Entry("backup/snapshots/snap0/rootfs/x", "f", uid=1000, gid=1000)
    assert v.owners(g).uid == 1000
    h = view_of(meta(), ["/"], host_ids=True)
    assert h is not None
    h.note(snap)
    h.note(root)
    assert (h.owners(g).uid, h.owners(g).gid) == (101000, 201000)
    assert h.owners(f).uid == 101000
    assert IdMap.parse("[]").unshifted(f) is f and not IdMap.parse_lenient("not json")
