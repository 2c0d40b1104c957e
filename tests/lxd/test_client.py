"""dedupe.lxd.api (the client) against a real LXD daemon (marked ``lxd``), plus a few
tests against a fake daemon on a unix socket for what a real one will not do on demand
(cut a download mid-way, send a wrong image)."""

from __future__ import annotations

import contextlib
import datetime as dt
import gzip
import hashlib
import http.server
import io
import json
import os
import re
import secrets
import shutil
import socket
import socketserver
import stat
import subprocess
import sys
import tarfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from dedupe_testing import require_root

from lxd.conftest import free_port, make_cert
from dedupe.lxd.api import (
    ImageFingerprintMismatch,
    LXDClient,
    LXDError,
    LXDNotFound,
    LXDOperationFailed,
    LXDPermissionDenied,
    LXDStreamBroken,
    LXDUnreachable,
    LXDUntrustedServer,
    strip_read_only,
)

POOL = "default"


# ======================================================================================
# helpers


def tar_members(
    stream: Any, want: Callable[[str], bool] = lambda n: False
) -> tuple[list[tarfile.TarInfo], dict[str, bytes]]:
    """Read a tar stream once: every member header, and the content of wanted files."""
    members: list[tarfile.TarInfo] = []
    data: dict[str, bytes] = {}
    with tarfile.open(fileobj=stream, mode="r|", encoding="utf-8", errors="surrogateescape") as tar:
        for m in tar:
            members.append(m)
            if m.isreg() and (m.name == "backup/index.yaml" or want(m.name)):
                f = tar.extractfile(m)
                assert f is not None
                data[m.name] = f.read()
    return members, data


def index_field(index: bytes, key: str) -> str:
    match = re.search(rb"^" + key.encode() + rb": (.*)$", index, re.M)
    assert match, f"{key} not in index.yaml"
    return match.group(1).decode()


def stripped(record: dict[str, Any], *keys: str) -> dict[str, Any]:
    return {k: v for k, v in record.items() if k not in keys}


# ======================================================================================
# without LXD: a fake daemon on a unix socket


class _FakeServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True
    routes: dict[str, Callable[[_FakeHandler], None]]


class _FakeHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _FakeServer

    def do_GET(self) -> None:
        route = self.server.routes.get(self.path.split("?")[0])
        if route is None:
            self.send_json({"type": "error", "error": "not found", "error_code": 404}, 404)
        else:
            route(self)

    def send_json(self, body: dict[str, Any], status: int = 200) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def cut(self) -> None:
        self.wfile.flush()
        self.connection.shutdown(socket.SHUT_RDWR)
        self.close_connection = True

    def address_string(self) -> str:
        return "fake"

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def fake_lxd(tmp_path: Path) -> Iterator[tuple[LXDClient, dict[str, Any]]]:
    path = tmp_path / "fake.socket"
    server = _FakeServer(str(path), _FakeHandler)
    info = {
        "auth": "trusted",
        "api_extensions": [],
        "config": {},
        "environment": {"server_version": "fake", "server_name": "fake"},
    }
    server.routes = {
        "/1.0": lambda h: h.send_json({"type": "sync", "status_code": 200, "metadata": info})
    }
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    client = LXDClient.connect(remote=str(path))
    try:
        yield client, server.routes
    finally:
        client.close()
        server.shutdown()
        server.server_close()


def _send_chunked(
    h: http.server.BaseHTTPRequestHandler,
    body: bytes,
    step: int,
    content_type: str,
    cut_at: int | None = None,
) -> None:
    h.send_response(200)
    h.send_header("Content-Type", content_type)
    h.send_header("Transfer-Encoding", "chunked")
    h.end_headers()
    end = len(body) if cut_at is None else cut_at
    for i in range(0, end, step):
        piece = body[i : min(i + step, end)]
        h.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
    if cut_at is None:
        h.wfile.write(b"0\r\n\r\n")
    else:
        h.cut()  # type: ignore[attr-defined]


def _multipart(boundary: str, meta: bytes, rootfs: bytes) -> bytes:
    b = boundary.encode()
    return (
        b"--" + b + b'\r\nContent-Disposition: form-data; name="metadata"; '
        b'filename="meta-x.tar.gz"\r\nContent-Type: application/octet-stream\r\n\r\n'
        + meta
        + b"\r\n--"
        + b
        + b'\r\nContent-Disposition: form-data; name="rootfs"; '
        b'filename="x.tar.gz"\r\nContent-Type: application/octet-stream\r\n\r\n'
        + rootfs
        + b"\r\n--"
        + b
        + b"--\r\n"
    )


def test_connect_to_missing_or_dead_socket(tmp_path: Path) -> None:
    with pytest.raises(LXDUnreachable, match=r"bogus\.socket"):
        LXDClient.connect(remote=str(tmp_path / "bogus.socket"))
    (tmp_path / "plain").write_text("")
    with pytest.raises(LXDUnreachable, match="not a socket"):
        LXDClient.connect(remote=f"unix:{tmp_path / 'plain'}")
    dead = tmp_path / "dead.socket"
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(dead))  # bound, never listening: connection refused
    try:
        with pytest.raises(LXDUnreachable, match=r"dead\.socket"):
            LXDClient.connect(remote=str(dead))
    finally:
        s.close()


def test_lxd_dir_socket_is_found(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LXD_DIR", str(tmp_path))
    with pytest.raises(LXDUnreachable, match=re.escape(str(tmp_path / "unix.socket"))):
        LXDClient.connect()


def test_short_export_body_raises(fake_lxd: tuple[LXDClient, dict[str, Any]]) -> None:
    client, routes = fake_lxd

    def short(h: Any) -> None:
        h.send_response(200)
        h.send_header("Content-Type", "application/octet-stream")
        h.send_header("Content-Length", "100000")
        h.end_headers()
        h.wfile.write(b"x" * 40000)
        h.cut()

    routes["/1.0/instances/c/backups/b/export"] = short
    with client.export_instance_backup("c", "b") as stream:
        assert stream.length == 100000
        got = 0
        with pytest.raises(LXDStreamBroken, match="instances/c/backups/b/export"):
            while chunk := stream.read(8192):
                got += len(chunk)
        assert got <= 40000


@pytest.mark.parametrize("step", [3, 509, 65536])
def test_image_export_multipart_parsed_in_small_pieces(
    fake_lxd: tuple[LXDClient, dict[str, Any]],
    step: int,
) -> None:
    client, routes = fake_lxd
    meta, rootfs = b"M" * 300, secrets.token_bytes(70000) + b"\r\n--almost-boundary\r\n"
    fp = hashlib.sha256(meta + rootfs).hexdigest()
    boundary = "b0undary" + secrets.token_hex(8)
    body = _multipart(boundary, meta, rootfs)
    routes[f"/1.0/images/{fp}/export"] = lambda h: _send_chunked(
        h, body, step, f"multipart/form-data; boundary={boundary}"
    )
    with client.export_image(fp) as export:
        assert export.split
        got = {}
        for part in export.parts():
            pieces = []
            while chunk := part.read(1000):
                pieces.append(chunk)
            got[part.name] = (part.filename, b"".join(pieces))
        assert export.verified
    assert got == {"metadata": ("meta-x.tar.gz", meta), "rootfs": ("x.tar.gz", rootfs)}


def test_image_export_wrong_fingerprint_and_cut(
    fake_lxd: tuple[LXDClient, dict[str, Any]],
) -> None:
    client, routes = fake_lxd
    meta, rootfs = b"meta", b"rootfs" * 1000
    wrong = "0" * 64
    body = _multipart("B", meta, rootfs)
    routes[f"/1.0/images/{wrong}/export"] = lambda h: _send_chunked(
        h, body, 4096, "multipart/form-data; boundary=B"
    )
    with client.export_image(wrong) as export:
        parts = export.parts()
        assert next(parts).read() == meta
        with pytest.raises(ImageFingerprintMismatch, match=wrong):
            next(parts).read()
    cut = "1" * 64
    routes[f"/1.0/images/{cut}/export"] = lambda h: _send_chunked(
        h, body, 100, "multipart/form-data; boundary=B", cut_at=len(body) // 2
    )
    with client.export_image(cut) as export, pytest.raises(LXDStreamBroken):
        export.verify()
    unified = secrets.token_bytes(5000)
    ufp = hashlib.sha256(unified).hexdigest()

    def unified_route(h: Any) -> None:
        h.send_response(200)
        h.send_header("Content-Type", "application/octet-stream")
        h.send_header("Content-Length", str(len(unified)))
        h.send_header("Content-Disposition", f"inline;filename={ufp}.tar.gz")
        h.end_headers()
        h.wfile.write(unified)

    routes[f"/1.0/images/{ufp}/export"] = unified_route
    with client.export_image(ufp) as export:
        got = [(part.name, part.filename, part.read()) for part in export.parts()]
        assert not export.split and export.verified
    assert got == [("unified", f"{ufp}.tar.gz", unified)]


def test_strip_read_only() -> None:
    net = {
        "name": "br",
        "type": "bridge",
        "config": {},
        "description": "",
        "used_by": [],
        "managed": True,
        "status": "Created",
        "locations": ["none"],
    }
    assert strip_read_only("network", net) == {
        "name": "br",
        "type": "bridge",
        "config": {},
        "description": "",
    }
    assert strip_read_only("server_config", {"core.trust_password": True, "user.a": "b"}) == {
        "user.a": "b"
    }
    with pytest.raises(ValueError):
        strip_read_only("nonsense", {})  # type: ignore[arg-type]


# ======================================================================================
# against the real daemon


@pytest.mark.lxd
def test_server_info_and_listings(lxd: LXDClient, lxd_project: Any) -> None:
    info = lxd.server_info()
    assert info["environment"]["server_version"]
    assert info["auth"] == "trusted"
    assert isinstance(lxd.server_config(), dict)
    c = lxd_project.container(files=False, start=False)
    p = lxd_project.client
    assert [i["name"] for i in p.instances()] == [c]
    assert p.instance(c)["name"] == c
    assert [s["name"] for s in p.snapshots(c)] == ["snap0"]
    assert any(pool["name"] == POOL for pool in p.storage_pools())
    assert any("tiny" in [a["name"] for a in i["aliases"]] for i in p.images())
    assert "tiny" in [a["name"] for a in p.image_aliases()]
    assert [pr["name"] for pr in p.profiles()] == ["default"]
    assert all(n["managed"] for n in lxd.networks())
    assert isinstance(lxd.network_acls(), list)
    assert lxd_project.name in [pr["name"] for pr in lxd.projects()]
    p.create_custom_volume(POOL, "v1")
    p.create_volume_snapshot(POOL, "v1", "vs0")
    assert [v["name"] for v in p.custom_volumes(POOL)] == ["v1"]  # no "v1/vs0"


@pytest.mark.lxd
def test_not_found_and_operation_failure(lxd_project: Any) -> None:
    p = lxd_project.client
    with pytest.raises(LXDNotFound, match="instance 'nope'"):
        p.instance("nope")
    with pytest.raises(LXDNotFound):
        p.delete_instance_backup("nope", "b")
    c = lxd_project.container(files=False, snapshot=None)
    with pytest.raises(LXDOperationFailed, match="already running"):
        p.start(c)
    with pytest.raises(LXDError, match=r"[Ii]nvalid|exist"):
        p.create_snapshot(c, "bad/name")


@pytest.mark.lxd
def test_freeze_unfreeze_stop_start(lxd_project: Any) -> None:
    p = lxd_project.client
    c = lxd_project.container(files=False, snapshot=None)
    p.freeze(c)
    assert p.instance_state(c)["status"] == "Frozen"
    p.unfreeze(c)
    p.stop(c)
    assert p.instance(c)["status"] == "Stopped"
    p.start(c)
    assert p.instance(c)["status"] == "Running"
    p.create_snapshot(c, "s1")
    p.delete_snapshot(c, "s1")
    assert p.snapshots(c) == []


@pytest.mark.lxd
def test_instance_backup_streams_a_tar_and_is_deleted(lxd_project: Any) -> None:
    p = lxd_project.client
    c = lxd_project.container()
    tree = f"backup/container/rootfs/{lxd_project.tree}"
    with p.instance_backup(c) as stream:
        assert stream.length and stream.length > 0
        members, data = tar_members(stream, lambda n: n.startswith(tree))
        assert stream.position == stream.length
    assert p.instance_backups(c) == []
    assert members[0].name == "backup/index.yaml"
    index = data["backup/index.yaml"]
    assert index_field(index, "name") == c
    assert index_field(index, "type") == "container"
    assert b"- snap0" in index
    by_name = {m.name: m for m in members}
    assert f"backup/snapshots/snap0/rootfs/{lxd_project.tree}/file.txt" in by_name
    m = by_name[f"{tree}/file.txt"]
    assert (m.uid, m.gid, m.mode, m.mtime) == (101000, 102000, 0o640, lxd_project.mtime)
    assert data[f"{tree}/file.txt"] == b"hello\n"
    assert by_name[f"{tree}/hard"].islnk() or m.islnk()
    assert by_name[f"{tree}/link-rel"].issym()
    assert by_name[f"{tree}/link-abs-dangling"].linkname == "/nonexistent/target"
    assert by_name[f"{tree}/fifo"].isfifo()
    null = by_name[f"{tree}/null"]
    assert null.ischr() and (null.devmajor, null.devminor) == (1, 3)
    assert by_name[f"{tree}/loop0"].isblk()
    assert by_name[f"{tree}/sticky"].mode == 0o1777
    assert by_name[f"{tree}/setuid"].mode == 0o4755
    pax = by_name[f"{tree}/xattr.txt"].pax_headers
    assert pax.get("SCHILY.xattr.user.backuptest") == "value"
    assert f"{tree}/caf\udce9" in by_name  # a non-UTF-8 name, raw in a PAX path record
    assert by_name[f"{tree}/sparse"].size == 1 << 20  # stored dense


@pytest.mark.lxd
@pytest.mark.parametrize("error", [RuntimeError, KeyboardInterrupt])
def test_backup_deleted_when_the_reader_fails(lxd_project: Any, error: type) -> None:
    p = lxd_project.client
    c = lxd_project.container(files=False, snapshot=None)
    with pytest.raises(error), p.instance_backup(c, instance_only=True) as stream:
        assert stream.read(1000)
        raise error("consumer died mid-stream")
    assert p.instance_backups(c) == []


@pytest.mark.lxd
def test_import_instance_streamed_from_an_export(lxd_project: Any) -> None:
    p = lxd_project.client
    c = lxd_project.container()
    with p.instance_backup(c) as stream:
        assert p.import_instance(stream, name=f"{c}r", pool=POOL) == f"{c}r"
    lxd_project.containers.append(f"{c}r")
    assert p.instance(f"{c}r")["status"] == "Stopped"
    assert [s["name"] for s in p.snapshots(f"{c}r")] == ["snap0"]
    src, dst = lxd_project.rootfs(c), lxd_project.rootfs(f"{c}r")
    for rel in ("file.txt", "random.bin", "xattr.txt", "caf\udce9"):
        a, b = src / lxd_project.tree / rel, dst / lxd_project.tree / rel
        assert a.read_bytes() == b.read_bytes()
        sa, sb = a.lstat(), b.lstat()
        # LXD's tar writer (Go) rounds mtimes to the nearest second
        assert (sa.st_uid, sa.st_gid, sa.st_mode) == (sb.st_uid, sb.st_gid, sb.st_mode)
        assert abs(sa.st_mtime_ns - sb.st_mtime_ns) <= 500_000_000 and sb.st_mtime_ns % 10**9 == 0
    assert os.getxattr(dst / lxd_project.tree / "xattr.txt", "trusted.foo") == b"bar"
    assert stat.S_ISCHR((dst / lxd_project.tree / "null").lstat().st_mode)
    p.start(f"{c}r")
    out = lxd_project.lxc("exec", f"{c}r", "--", "cat", "/root/hello").stdout
    assert out == "hello\n"
    # an iterable of chunks works as well as a readable
    with p.instance_backup(c, instance_only=True) as stream:
        chunks = iter(lambda: stream.read(65536), b"")
        p.import_instance(chunks, name=f"{c}i")
    lxd_project.containers.append(f"{c}i")
    assert p.snapshots(f"{c}i") == []


@pytest.mark.lxd
def test_stale_backups(lxd_project: Any) -> None:
    p = lxd_project.client
    c = lxd_project.container(files=False, start=False, snapshot=None)
    p.create_custom_volume(POOL, "sv")
    b1 = p.create_instance_backup(c, instance_only=True)
    b2 = p.create_volume_backup(POOL, "sv", volume_only=True)
    other = p.create_instance_backup(c, instance_only=True, name_prefix="mine-")
    assert b1.startswith("dedupe-") and b2.startswith("dedupe-")
    with p.export_instance_backup(c, b1) as stream:
        assert tar_members(stream)[0][0].name == "backup/index.yaml"
    assert p.stale_backups(older_than=dt.timedelta(hours=1)) == []
    stale = {(s.kind, s.owner, s.name, s.pool) for s in p.stale_backups()}
    assert stale == {("instance", c, b1, ""), ("volume", "sv", b2, POOL)}
    assert len(p.delete_stale_backups()) == 2
    assert p.stale_backups() == []
    assert [b["name"] for b in p.instance_backups(c)] == [other]
    p.delete_instance_backup(c, other)
    assert p.volume_backups(POOL, "sv") == []


@pytest.mark.lxd
def test_custom_volume_backup_and_import(lxd_project: Any) -> None:
    p = lxd_project.client
    p.create_custom_volume(POOL, "vol1", config={"user.k": "v"})
    files = lxd_project.write_tree(lxd_project.volume_path("vol1"))
    p.create_volume_snapshot(POOL, "vol1", "vsnap0")
    with p.volume_backup(POOL, "vol1") as stream:
        members, data = tar_members(stream, lambda n: n.endswith("/file.txt"))
    assert p.volume_backups(POOL, "vol1") == []
    index = data["backup/index.yaml"]
    assert index_field(index, "name") == "vol1"
    assert index_field(index, "type") == "custom"
    names = {m.name for m in members}
    assert f"backup/volume/{lxd_project.tree}/file.txt" in names
    assert f"backup/volume-snapshots/vsnap0/{lxd_project.tree}/file.txt" in names
    with p.volume_backup(POOL, "vol1", volume_only=True) as stream:
        assert p.import_custom_volume(POOL, stream, name="vol1r") == "vol1r"
    with p.volume_backup(POOL, "vol1") as stream:
        p.import_custom_volume(POOL, stream, name="vol1s")
    assert {v["name"] for v in p.custom_volumes(POOL)} == {"vol1", "vol1r", "vol1s"}
    assert p.volume_snapshots(POOL, "vol1r") == []
    # unlike instance snapshots, volume snapshot records are named "<volume>/<snapshot>"
    assert [s["name"] for s in p.volume_snapshots(POOL, "vol1s")] == ["vol1s/vsnap0"]
    restored = lxd_project.volume_path("vol1r") / lxd_project.tree / "file.txt"
    assert restored.read_bytes() == files[f"{lxd_project.tree}/file.txt"]


def _tiny_fingerprint(lxd: LXDClient) -> str:
    return str(next(a["target"] for a in lxd.image_aliases("default") if a["name"] == "tiny"))


@pytest.mark.lxd
def test_export_split_image(lxd: LXDClient) -> None:
    fp = _tiny_fingerprint(lxd)
    with lxd.export_image(fp) as export:
        assert export.split
        sizes = {}
        for part in export.parts():
            sizes[part.name] = len(part.read())
        assert export.verified
    assert set(sizes) == {"metadata", "rootfs"} and sizes["rootfs"] > 100_000
    with lxd.export_image(fp) as export:
        assert export.verify() == fp


def _metadata_tar(description: str) -> bytes:
    text = (
        f"architecture: {os.uname().machine}\ncreation_date: {int(time.time())}\n"
        f"properties:\n  description: {description}\n  os: busybox\n"
    ).encode()
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        info = tarfile.TarInfo("metadata.yaml")
        info.size, info.mtime = len(text), int(time.time())
        tar.addfile(info, io.BytesIO(text))
    return gzip.compress(raw.getvalue(), mtime=0)


@pytest.mark.lxd
def test_split_image_import_export_reimport(lxd: LXDClient) -> None:
    with lxd.export_image(_tiny_fingerprint(lxd)) as export:
        rootfs = [p.read() for p in export.parts()][1]
    tag = secrets.token_hex(4)
    meta = _metadata_tar(f"dedupe test {tag}")
    fp = hashlib.sha256(meta + rootfs).hexdigest()
    alias = f"dedupe-test-{tag}"
    props = {"description": f"dedupe test {tag}", "os": "busybox"}
    try:
        assert (
            lxd.import_image(
                (io.BytesIO(meta), iter([rootfs[:1000], rootfs[1000:]])),
                fingerprint=fp,
                properties=props,
                filename="split.tar.gz",
            )
            == fp
        )
        lxd.add_image_alias(alias, fp, "test alias")
        before = lxd.image(fp)
        with lxd.export_image(fp) as export:
            parts = {p.name: p.read() for p in export.parts()}
            assert export.verified
        assert parts == {"metadata": meta, "rootfs": rootfs}
        lxd.delete_image(fp)
        with pytest.raises(LXDNotFound):
            lxd.image(fp)
        assert (
            lxd.import_image(
                (parts["metadata"], parts["rootfs"]),
                fingerprint=fp,
                properties=before["properties"],
                public=before["public"],
                filename=before["filename"],
            )
            == fp
        )
        for a in before["aliases"]:
            lxd.add_image_alias(a["name"], fp, a["description"])
        after = lxd.image(fp)
        volatile = ("uploaded_at", "last_used_at", "expires_at")
        assert stripped(after, *volatile) == stripped(before, *volatile)
    finally:
        with contextlib.suppress(LXDNotFound):
            lxd.delete_image(fp)


@pytest.mark.lxd
def test_unified_image_publish_export_reimport(lxd: LXDClient, lxd_project: Any) -> None:
    p = lxd_project.client
    c = lxd_project.container(files=False, start=False)
    alias = f"dedupe-pub-{secrets.token_hex(4)}"
    fp = p.publish_instance(c, snapshot="snap0", aliases=[alias])
    try:
        before = lxd.image(fp)
        assert alias in [a["name"] for a in before["aliases"]]
        with lxd.export_image(fp) as export:
            assert not export.split
            bodies = [(part.name, part.filename, part.read()) for part in export.parts()]
            assert export.verified
        ((name, filename, body),) = bodies
        assert name == "unified" and filename.startswith(fp)
        assert hashlib.sha256(body).hexdigest() == fp
        lxd.delete_image(fp)
        with pytest.raises(ImageFingerprintMismatch):
            lxd.import_image(body, fingerprint="f" * 64)
        with pytest.raises(LXDNotFound):
            lxd.image(fp)  # the refused upload left nothing behind
        chunks = (body[i : i + 4096] for i in range(0, len(body), 4096))
        assert (
            lxd.import_image(
                chunks,
                fingerprint=fp,
                properties=before["properties"],
                public=True,
                filename=before["filename"],
            )
            == fp
        )
        for a in before["aliases"]:
            lxd.add_image_alias(a["name"], fp, a["description"])
        lxd.update_image(fp, {**before, "public": False})
        after = lxd.image(fp)
        volatile = ("uploaded_at", "last_used_at", "expires_at", "created_at")
        assert stripped(after, *volatile) == stripped(before, *volatile)
        lxd.delete_image_alias(alias)
        assert alias not in [a["name"] for a in lxd.image_aliases()]
    finally:
        with contextlib.suppress(LXDNotFound):
            lxd.delete_image(fp)


@pytest.mark.lxd
def test_profile_round_trip(lxd_project: Any) -> None:
    p = lxd_project.client
    p.create_profile(
        {
            "name": "web",
            "description": "web servers",
            "config": {"limits.cpu": "1", "user.tag": "x"},
            "devices": {"data": {"type": "disk", "pool": POOL, "source": "pv", "path": "/data"}},
        }
    )
    p.create_custom_volume(POOL, "pv")
    before = p.profile("web")
    p.delete_profile("web")
    p.create_profile(strip_read_only("profile", before))
    assert p.profile("web") == before
    changed = {**before, "description": "changed"}
    p.update_profile(changed)
    assert p.profile("web")["description"] == "changed"


@pytest.mark.lxd
def test_network_and_acl_round_trip(lxd: LXDClient) -> None:
    tag = secrets.token_hex(3)
    net, acl = f"dtbr{tag}", f"dedupe-acl-{tag}"
    try:
        lxd.create_network(
            {
                "name": net,
                "type": "bridge",
                "description": "test bridge",
                "config": {
                    "ipv4.address": "none",
                    "ipv6.address": "none",
                    "ipv4.firewall": "false",
                    "ipv6.firewall": "false",
                },
            },
            project="default",
        )
        before = lxd.network(net, "default")
        assert net in [n["name"] for n in lxd.networks("default")]
        lxd.delete_network(net, "default")
        lxd.create_network(strip_read_only("network", before), "default")
        assert lxd.network(net, "default") == before

        rule = {
            "action": "allow",
            "protocol": "tcp",
            "destination_port": "22",
            "description": "ssh",
            "state": "enabled",
        }
        lxd.create_network_acl(
            {
                "name": acl,
                "description": "test acl",
                "config": {"user.k": "v"},
                "ingress": [rule],
                "egress": [],
            },
            "default",
        )
        before_acl = lxd.network_acl(acl, "default")
        assert acl in [a["name"] for a in lxd.network_acls("default")]
        lxd.delete_network_acl(acl, "default")
        lxd.create_network_acl(strip_read_only("network_acl", before_acl), "default")
        assert lxd.network_acl(acl, "default") == before_acl
    finally:
        for delete, name in ((lxd.delete_network_acl, acl), (lxd.delete_network, net)):
            with contextlib.suppress(LXDNotFound):
                delete(name, "default")


@pytest.mark.lxd
def test_project_pool_and_server_config_round_trip(lxd: LXDClient) -> None:
    tag = secrets.token_hex(3)
    project, pool, key = f"dedupe-test-rt-{tag}", f"dtpool{tag}", f"user.dedupe-test-{tag}"
    try:
        lxd.create_project(
            {
                "name": project,
                "description": "round trip",
                "config": {
                    "features.images": "false",
                    "features.profiles": "true",
                    "limits.instances": "5",
                    "user.k": "v",
                },
            }
        )
        before = lxd.project_record(project)
        lxd.delete_project(project)
        lxd.create_project(strip_read_only("project", before))
        assert lxd.project_record(project) == before
        lxd.update_project({**before, "description": "changed"})
        assert lxd.project_record(project)["description"] == "changed"

        lxd.create_storage_pool(
            {"name": pool, "driver": "dir", "description": "test pool", "config": {}}
        )
        before_pool = lxd.storage_pool(pool)
        lxd.delete_storage_pool(pool)
        lxd.create_storage_pool(strip_read_only("storage_pool", before_pool))
        assert lxd.storage_pool(pool) == before_pool

        lxd.patch_server_config({key: "x"})
        assert lxd.server_config()[key] == "x"
        lxd.patch_server_config({key: ""})
        assert key not in lxd.server_config()
    finally:
        cleanups: list[Callable[[], None]] = [
            lambda: lxd.delete_project(project),
            lambda: lxd.delete_storage_pool(pool),
            lambda: lxd.patch_server_config({key: ""}),
        ]
        for cleanup in cleanups:
            with contextlib.suppress(LXDNotFound):
                cleanup()


@pytest.mark.lxd
def test_sql_dumps(lxd: LXDClient, monkeypatch: pytest.MonkeyPatch) -> None:
    dump = lxd.sql_dump("global")
    assert (
        dump.startswith(b"PRAGMA foreign_keys=OFF;")
        and b'CREATE TABLE IF NOT EXISTS "instances"' in dump
    )
    local = lxd.sql_dump("local")
    assert b"CREATE TABLE" in local and b"certificates" in local
    if shutil.which("lxd") is None:
        return
    real = lxd.request

    def refuse(method: str, segments: Any, **kwargs: Any) -> Any:
        if list(segments)[:2] == ["internal", "sql"]:
            raise LXDPermissionDenied("LXD refused GET /internal/sql: test (403)")
        return real(method, segments, **kwargs)

    monkeypatch.setattr(lxd, "request", refuse)
    fallback = lxd.sql_dump("local")
    assert fallback.startswith(b"PRAGMA foreign_keys=OFF;") and b"CREATE TABLE" in fallback


@pytest.mark.lxd
def test_recover_a_volume_lost_from_the_database(lxd: LXDClient, lxd_project: Any) -> None:
    p = lxd_project.client
    pool = f"dtrec{secrets.token_hex(3)}"
    lxd.create_storage_pool({"name": pool, "driver": "dir", "config": {}})
    try:
        p.create_custom_volume(pool, "rv")
        (lxd_project.volume_path("rv", pool) / "f").write_bytes(b"recover me\n")
        subprocess.run(
            [
                "lxd",
                "sql",
                "global",
                "DELETE FROM storage_volumes WHERE name='rv' AND "
                f"storage_pool_id=(SELECT id FROM storage_pools WHERE name='{pool}')",
            ],
            check=True,
            capture_output=True,
            timeout=60,
        )
        assert p.custom_volumes(pool) == []
        report = lxd.recover_validate([{"name": pool}])
        unknown = report.get("UnknownVolumes") or report.get("unknown_volumes") or []
        assert [(v["name"], v["type"], v["project"]) for v in unknown] == [
            ("rv", "volume", lxd_project.name)
        ]  # custom volumes are "volume" here
        assert not (report.get("DependencyErrors") or report.get("dependency_errors"))
        lxd.recover_import([{"name": pool}])
        assert [v["name"] for v in p.custom_volumes(pool)] == ["rv"]
        assert (lxd_project.volume_path("rv", pool) / "f").read_bytes() == b"recover me\n"
    finally:
        for vol in p.custom_volumes(pool):
            p.delete_custom_volume(pool, vol["name"])
        lxd.delete_storage_pool(pool)


@pytest.mark.lxd
def test_https_remote_with_pinned_server_certificate(
    lxd: LXDClient, lxd_project: Any, tmp_path: Path
) -> None:
    assert lxd.socket_path is not None
    server_crt = lxd.socket_path.parent / "server.crt"
    c = lxd_project.container(files=False, start=False, snapshot=None)
    old_address = lxd.server_config().get("core.https_address", "")
    port = free_port()
    url = f"https://127.0.0.1:{port}"
    cert, key, pem = make_cert(f"dedupe-test-{secrets.token_hex(3)}", tmp_path)
    fingerprint = ""
    try:
        lxd.patch_server_config({"core.https_address": f"127.0.0.1:{port}"})
        fingerprint = lxd.add_certificate(pem, name=cert.stem)
        remote = LXDClient.connect(
            remote=url, cert=cert, key=key, verify=server_crt, project=lxd_project.name
        )
        with remote:
            assert remote.endpoint == url
            assert [i["name"] for i in remote.instances()] == [c]
            with remote.instance_backup(c, instance_only=True) as stream:
                assert tar_members(stream)[0][0].name == "backup/index.yaml"
            assert remote.instance_backups(c) == []
        # the record reads back and re-creates to the same thing
        record = next(r for r in lxd.certificates() if r["fingerprint"] == fingerprint)
        lxd.delete_certificate(fingerprint)
        assert lxd.create_certificate(record) == fingerprint
        assert next(r for r in lxd.certificates() if r["fingerprint"] == fingerprint) == record
        # a wrong pinned certificate, and the system CAs, refuse LXD's self-signed one
        wrong, _, _ = make_cert("not-the-server", tmp_path)
        with pytest.raises(LXDUntrustedServer, match=r"127\.0\.0\.1"):
            LXDClient.connect(remote=url, cert=cert, key=key, verify=wrong)
        with pytest.raises(LXDUntrustedServer):
            LXDClient.connect(remote=f"127.0.0.1:{port}", cert=cert, key=key, verify=True)
        # a client certificate LXD does not trust
        stranger, stranger_key, _ = make_cert("stranger", tmp_path)
        with pytest.raises(LXDPermissionDenied, match="does not trust"):
            LXDClient.connect(remote=url, cert=stranger, key=stranger_key, verify=server_crt)
    finally:
        if fingerprint:
            with contextlib.suppress(LXDNotFound):
                lxd.delete_certificate(fingerprint)
        lxd.patch_server_config({"core.https_address": old_address})
    with pytest.raises(LXDUnreachable, match=r"127\.0\.0\.1"):
        LXDClient.connect(remote=url, cert=cert, key=key, verify=server_crt)


@pytest.mark.lxd
def test_permission_denied_on_the_socket_for_a_user(lxd: LXDClient) -> None:
    """EACCES on the socket (0660 root:root) for a user: checked in a forked child that
    drops to nobody (root bypasses file permissions)."""
    require_root("to drop to user nobody")
    socket_path = str(lxd.socket_path)
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: never returns into pytest
        message = "no error"
        try:
            os.setgroups([])
            os.setgid(65534)
            os.setuid(65534)
            LXDClient.connect(remote=socket_path)
        except LXDPermissionDenied as e:
            message = f"DENIED {e}"
        except BaseException as e:
            message = f"{type(e).__name__} {e}"
        finally:
            os.write(write_end, message.encode()[:4000])
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        message = pipe.read().decode()
    os.waitpid(pid, 0)
    assert message.startswith("DENIED"), message
    assert socket_path in message


@pytest.mark.lxd
def test_failed_imports_leave_nothing(lxd_project: Any) -> None:
    p = lxd_project.client
    c = lxd_project.container(files=False, start=False, snapshot=None)
    with p.instance_backup(c, instance_only=True) as stream:
        data = stream.read()

    def dies() -> Iterator[bytes]:
        yield data[: len(data) // 2]
        raise RuntimeError("source died")

    with pytest.raises(RuntimeError, match="source died"):  # the source's own error
        p.import_instance(dies(), name="cut1")
    with pytest.raises(LXDOperationFailed, match="Unexpected EOF"):  # a short tarball
        p.import_instance(iter([data[: len(data) // 2]]), name="cut2")
    with pytest.raises(LXDError, match="Unsupported compression"):
        p.import_instance(b"garbage" * 1000, name="cut3")
    assert [i["name"] for i in p.instances()] == [c]
    assert [v["name"] for v in p.custom_volumes(POOL)] == []


def test_plain_gets_on_the_socket_need_no_pylxd(lxd: LXDClient) -> None:
    """Issue #14 item 7: on the local socket, records are read without importing pylxd
    (and requests); the answers and the errors are those pylxd's path gives, a kept-alive
    connection that went away is opened again, and a write still goes through pylxd."""
    code = r"""
import json, sys
from dedupe.lxd.api import LXDClient, LXDNotFound
c = LXDClient.connect()
out = {"server": sorted(c.server_info()), "pools": sorted(p["name"] for p in c.storage_pools())}
c._gets._conn.sock.close()  # as if LXD had closed the kept-alive connection
out["again"] = sorted(p["name"] for p in c.storage_pools())
try:
    c.instance("no-such-instance-here")
except LXDNotFound as e:
    out["missing"] = str(e)
out["pylxd"] = "pylxd" in sys.modules or "requests" in sys.modules
print(json.dumps(out))
"""
    got = json.loads(subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout)
    assert got["pylxd"] is False
    assert got["server"] == sorted(lxd.server_info())
    assert got["pools"] == got["again"] == sorted(p["name"] for p in lxd.storage_pools())
    # the same error pylxd's path gives
    with pytest.raises(LXDNotFound) as through_pylxd:
        lxd._sync("GET", ["1.0", "instances", "no-such-instance-here"], project=None)
    assert got["missing"] == str(through_pylxd.value)
    c = LXDClient.connect()
    assert c._sync("GET", ["1.0"], project=False)["api_version"] == c.server_info()["api_version"]
    c.close()
