"""A ``--force`` restore into LXD without a daemon: the copy is imported under a
temporary name and checked before the original is touched, and every failure before the
original's delete leaves it as it was (a fake client holds the objects); a network zone
written halfway is put back; ``--recover --force`` sets the old directories aside."""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest

from dedupe.lxd.errors import LXDError, LXDNotFound, LXDReplaceIncomplete, LXDRestoreError
from dedupe.lxd.sink.objects import Imported, import_image, import_instance, import_volume, temp_name
from dedupe.lxd.sink.records import restore_record
from dedupe.lxd.sink.pool import ASIDE_PREFIX, set_aside
from dedupe.lxd.api.client import LXDClient


class Broken(LXDError):
    """The failure a test injects."""


class ObjectsLXD(LXDClient):
    """Instances ({name: {"status", "snapshots", "data"}}) and volumes of one pool in
    memory; ``fail`` names the calls that raise ``Broken`` ("delete" or "delete c1");
    ``calls`` records them."""

    def __init__(self, fail: Iterable[str] = ()) -> None:  # no connection
        self.endpoint = "unix:/fake"
        self.project = "default"
        self.instances_: dict[str, dict[str, Any]] = {}
        self.volumes_: dict[str, dict[str, Any]] = {}
        self.fail = set(fail)
        self.calls: list[str] = []

    def _call(self, what: str) -> None:
        self.calls.append(what)
        if what in self.fail or what.split()[0] in self.fail:
            raise Broken(f"{what} broke")

    @staticmethod
    def _get(objects: dict[str, Any], name: str) -> dict[str, Any]:
        if name not in objects:
            raise LXDNotFound(f"{name} not found")
        return dict(objects[name])

    def instance(self, name: str, project: Any = None) -> dict[str, Any]:
        return self._get(self.instances_, name)

    def snapshots(self, name: str, project: Any = None) -> list[dict[str, Any]]:
        return [{"name": s} for s in self._get(self.instances_, name)["snapshots"]]

    def import_instance(self, stream: Any, name: str | None = None, pool: str | None = None,
                        project: Any = None) -> str:
        assert name is not None
        data = b"".join(stream)
        self._call(f"import {name}")
        self.instances_[name] = {"status": "Stopped", "snapshots": self.imported_snapshots, "data": data}
        return name

    imported_snapshots = ["snap0"]

    def stop(self, name: str, force: bool = True, project: Any = None) -> None:
        self._call(f"stop {name}")
        self.instances_[name]["status"] = "Stopped"

    def start(self, name: str, project: Any = None) -> None:
        self._call(f"start {name}")
        self.instances_[name]["status"] = "Running"

    def delete_instance(self, name: str, project: Any = None) -> None:
        self._call(f"delete {name}")
        self._get(self.instances_, name)
        del self.instances_[name]

    def rename_instance(self, name: str, new_name: str, project: Any = None) -> None:
        self._call(f"rename {name}")
        self.instances_[new_name] = self.instances_.pop(name)

    def custom_volume(self, pool: str, name: str, project: Any = None) -> dict[str, Any]:
        return self._get(self.volumes_, name)

    def volume_snapshots(self, pool: str, name: str, project: Any = None) -> list[dict[str, Any]]:
        return [{"name": f"{name}/{s}"} for s in self._get(self.volumes_, name)["snapshots"]]

    def import_custom_volume(self, pool: str, stream: Any, name: str | None = None, project: Any = None) -> str:
        assert name is not None
        data = b"".join(stream)
        self._call(f"import {name}")
        self.volumes_[name] = {"snapshots": self.imported_snapshots, "data": data, "used_by": []}
        return name

    def delete_custom_volume(self, pool: str, name: str, project: Any = None) -> None:
        self._call(f"delete {name}")
        self._get(self.volumes_, name)
        del self.volumes_[name]

    def rename_custom_volume(self, pool: str, name: str, new_name: str, project: Any = None) -> None:
        self._call(f"rename {name}")
        self.volumes_[new_name] = self.volumes_.pop(name)


def _damaged() -> Iterable[bytes]:
    yield b"first part"
    raise LXDError("chunk 1234 is damaged")


def _original(client: ObjectsLXD, status: str = "Running") -> None:
    client.instances_["c1"] = {"status": status, "snapshots": ["old"], "data": b"original"}


def _restore(client: ObjectsLXD, pieces: Iterable[bytes] = (b"backup",)) -> Imported:
    return import_instance(client, pieces, "c1", "p", None, ("c1", "p"), force=True, snapshots=["snap0"])


def test_temp_names_fit_lxd_and_say_what_they_are() -> None:
    assert re.fullmatch(r"c1-dedupe-[0-9a-f]{6}", temp_name("c1"))
    long = temp_name("x" * 63)
    assert len(long) == 63 and long.startswith("x" * 49 + "-dedupe-")
    assert temp_name("c1") != temp_name("c1")


def test_replacing_a_running_instance_stops_it_late_and_starts_it_again() -> None:
    c = ObjectsLXD()
    _original(c)
    done = _restore(c)
    assert done.action == "replaced" and "running" in done.notes[0] and "started again" in done.notes[0]
    assert list(c.instances_) == ["c1"] and c.instances_["c1"]["data"] == b"backup"
    assert c.instances_["c1"]["status"] == "Running"
    temp = c.calls[0].split()[1]
    assert c.calls == [f"import {temp}", "stop c1", "delete c1", f"rename {temp}", "start c1"]


def test_a_stopped_instance_stays_stopped() -> None:
    c = ObjectsLXD()
    _original(c, "Stopped")
    assert _restore(c) == Imported("replaced")
    assert c.instances_["c1"]["status"] == "Stopped" and not any(x.startswith(("stop", "start")) for x in c.calls)


@pytest.mark.parametrize("fail", ["import", "stop", "delete c1"])
def test_a_failure_before_the_delete_leaves_the_original_running(fail: str) -> None:
    c = ObjectsLXD(fail={fail})
    _original(c)
    with pytest.raises(Broken):
        _restore(c)
    assert c.instances_ == {"c1": {"status": "Running", "snapshots": ["old"], "data": b"original"}}


def test_a_damaged_stream_or_missing_snapshots_leave_the_original() -> None:
    c = ObjectsLXD()
    _original(c)
    with pytest.raises(LXDError, match="damaged"):
        _restore(c, _damaged())
    c.imported_snapshots = []
    with pytest.raises(LXDRestoreError, match=r"has snapshots \[\], the backup \['snap0'\]"):
        _restore(c)
    assert list(c.instances_) == ["c1"] and c.instances_["c1"]["data"] == b"original"
    assert not any(x.startswith("stop") or x == "delete c1" for x in c.calls)


def test_after_the_delete_a_failed_rename_or_start_says_where_things_are() -> None:
    c = ObjectsLXD(fail={"rename"})
    _original(c)
    with pytest.raises(LXDReplaceIncomplete, match=r"renaming the restored copy 'c1-dedupe-[0-9a-f]{6}' to 'c1'"):
        _restore(c)
    c = ObjectsLXD(fail={"start"})
    _original(c)
    with pytest.raises(LXDReplaceIncomplete, match="did not start again"):
        _restore(c)
    assert c.instances_["c1"]["data"] == b"backup"


def _volume(c: ObjectsLXD, used_by: list[str] | None = None) -> None:
    c.volumes_["v1"] = {"snapshots": ["old"], "data": b"original", "used_by": used_by or []}


def test_volume_replaced_through_a_copy_and_left_when_anything_fails() -> None:
    c = ObjectsLXD()
    _volume(c)
    assert import_volume(c, [b"backup"], "default", "v1", "p", True, ["snap0"]) == Imported("replaced")
    assert list(c.volumes_) == ["v1"] and c.volumes_["v1"]["data"] == b"backup"
    for fail in ("import", "delete v1"):  # LXD refuses to delete a volume in use
        c = ObjectsLXD(fail={fail})
        _volume(c)
        with pytest.raises(Broken):
            import_volume(c, [b"backup"], "default", "v1", "p", True, ["snap0"])
        assert c.volumes_ == {"v1": {"snapshots": ["old"], "data": b"original", "used_by": []}}


def test_a_volume_in_use_is_refused_before_anything_is_sent() -> None:
    c = ObjectsLXD()
    _volume(c, ["/1.0/instances/c1?project=p"])
    with pytest.raises(LXDError, match="used by /1.0/instances/c1.*detach it"):
        import_volume(c, [b"backup"], "default", "v1", "p", True, ["snap0"])
    assert c.calls == []


class ImagesLXD(LXDClient):
    def __init__(self, images: dict[str, Any], aliases: dict[str, str]) -> None:  # no connection
        self.endpoint = "unix:/fake"
        self.project = "default"
        self.images_, self.aliases_ = images, aliases
        self.calls: list[str] = []

    def image(self, fingerprint: str, project: Any = None) -> dict[str, Any]:
        if fingerprint not in self.images_:
            raise LXDNotFound(fingerprint)
        return dict(self.images_[fingerprint])

    def image_aliases(self, project: Any = None) -> list[dict[str, Any]]:
        return [{"name": n, "target": t} for n, t in self.aliases_.items()]

    def import_image(self, data: Any, fingerprint: str | None = None, *args: Any, **kwargs: Any) -> str:
        assert fingerprint is not None
        b"".join(data)
        self.calls.append(f"import {fingerprint}")
        self.images_[fingerprint] = {}
        return fingerprint

    def update_image(self, fingerprint: str, record: Any, project: Any = None) -> None:
        self.calls.append(f"update {fingerprint}")

    def delete_image(self, fingerprint: str, project: Any = None) -> None:
        raise AssertionError("an image is never deleted to be replaced")

    def add_image_alias(self, name: str, target: str, description: str = "", project: Any = None) -> None:
        self.calls.append(f"add {name}")
        self.aliases_[name] = target

    def update_image_alias(self, name: str, target: str, description: str = "", project: Any = None) -> None:
        self.calls.append(f"move {name}")
        self.aliases_[name] = target

    def delete_image_alias(self, name: str, project: Any = None) -> None:
        raise AssertionError("an alias is moved, never deleted")


def test_an_image_that_is_there_is_kept_and_its_aliases_come_back() -> None:
    c = ImagesLXD({"f" * 64: {}}, {"a": "f" * 64, "b": "e" * 64})
    aliases = [{"name": "a"}, {"name": "b"}, {"name": "c"}]
    assert import_image(c, lambda: [b"x"], "f" * 64, "p", {"public": False}, aliases, True) == Imported("updated")
    assert c.calls == [f"update {'f' * 64}", "move b", "add c"]


def test_a_failed_image_import_moves_no_alias() -> None:
    c = ImagesLXD({}, {"a": "e" * 64})
    with pytest.raises(LXDError, match="damaged"):
        import_image(c, _damaged, "f" * 64, "p", {}, [{"name": "a"}], True)
    assert c.aliases_ == {"a": "e" * 64}


class ZoneLXD(LXDClient):
    """Network zone requests over ``_sync``: the zone is ``zone`` (None: none); a write
    of DNS record ``b`` fails."""

    def __init__(self, zone: dict[str, Any] | None) -> None:  # no connection
        self.endpoint = "unix:/fake"
        self.project = "default"
        self.zone = zone
        self.calls: list[tuple[str, str, Any]] = []

    def _sync(self, method: str, segments: Any, **kwargs: Any) -> Any:
        path = "/".join(segments)
        if method == "GET":
            if self.zone is None:
                raise LXDNotFound(path)
            if path.endswith("/records"):
                return self.zone["records"]
            return {k: v for k, v in self.zone.items() if k != "records"}
        body = kwargs.get("json") or {}
        self.calls.append((method, path, body.get("description")))
        if path.endswith("/records/b") or (path.endswith("/records") and body.get("name") == "b"):
            raise Broken("record b refused")
        return None


def test_a_zone_written_halfway_is_undone() -> None:
    rec = {"description": "", "config": {}, "entries": []}
    new = {"name": "z", "description": "new", "config": {}, "records": [{"name": "a", **rec}, {"name": "b", **rec}]}
    c = ZoneLXD(None)
    with pytest.raises(Broken):
        restore_record(c, "network-zone", new, "p", force=True)
    assert c.calls[-1] == ("DELETE", "1.0/network-zones/z", None)
    old = {"name": "z", "description": "old", "config": {}, "records": [{"name": "a", **rec}]}
    c = ZoneLXD(old)
    with pytest.raises(Broken):
        restore_record(c, "network-zone", new, "p", force=True)
    # the zone's PUT, record a's, record b's POST (refused); then the old zone and its records back
    assert [(m, p.rsplit("/", 1)[-1], d) for m, p, d in c.calls] == [
        ("PUT", "z", "new"), ("PUT", "a", ""), ("POST", "records", ""), ("PUT", "z", "old"), ("PUT", "a", "")]


def _pool(tmp_path: Path) -> tuple[Path, list[Path]]:
    dirs = [tmp_path / "containers" / "p_c1", tmp_path / "containers-snapshots" / "p_c1"]
    for d in dirs:
        (d / "rootfs").mkdir(parents=True)
        (d / "rootfs" / "f").write_text("old")
    return tmp_path, dirs


def test_recover_force_puts_the_old_directories_back_when_it_fails(tmp_path: Path) -> None:
    source, dirs = _pool(tmp_path)
    with pytest.raises(Broken), set_aside(source, dirs):
        assert not any(d.exists() for d in dirs)  # out of the directories LXD's recovery scans
        assert len(list(source.glob(f"{ASIDE_PREFIX}*/containers/p_c1"))) == 1
        dirs[0].mkdir()
        (dirs[0] / "half-written").write_text("new")
        raise Broken("recovery failed")
    assert [(d / "rootfs" / "f").read_text() for d in dirs] == ["old", "old"]
    assert not (dirs[0] / "half-written").exists() and not list(source.glob(f"{ASIDE_PREFIX}*"))


def test_recover_force_deletes_the_old_directories_when_it_succeeds(tmp_path: Path) -> None:
    source, dirs = _pool(tmp_path)
    with set_aside(source, dirs):
        dirs[0].mkdir()
    assert dirs[0].exists() and not dirs[1].exists() and not list(source.glob(f"{ASIDE_PREFIX}*"))
