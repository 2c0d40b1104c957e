"""Fixtures for tests against a real LXD daemon (scripts/lxd-test-server.sh).

``lxd``: a client on the local daemon; when none answers, CI (CI=true) fails, a local
non-root run skips, and a local root run starts one with the script (once).
``lxd_project``: a fresh project ``dedupe-test-<random>`` whose instances, volumes,
profiles and the project itself are deleted afterwards; ``lxd_project.container()``
makes a started container from the ``tiny`` image holding files of every type, with a
snapshot. ``scratch_project``: a project name for a restore to create, cleaned up.
``https_remote``: the same daemon over HTTPS with a trusted client certificate.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import secrets
import socket
import stat
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from dedupe.lxd.api import LXDClient, LXDError, LXDNotFound, LXDPermissionDenied, LXDUnreachable

REPO = Path(__file__).resolve().parents[2]
SETUP_SCRIPT = REPO / "scripts" / "lxd-test-server.sh"
IMAGE = "tiny"
POOL = "default"

# Content of the file-type zoo written by ``write_tree`` (relative to the rootfs).
TREE = "root/tree"
MTIME = 981_173_106  # 2001-02-03 04:05:06 UTC
SPARSE_SIZE = 1 << 20


def _connect_or_start() -> LXDClient:
    try:
        return LXDClient.connect()
    except (LXDUnreachable, LXDPermissionDenied) as first:
        reason = f"no usable LXD daemon: {first}"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason} (CI must start one: {SETUP_SCRIPT} setup)")
        if os.geteuid() != 0:
            pytest.skip(f"{reason}; run `sudo {SETUP_SCRIPT} setup` to enable LXD tests")
        done = subprocess.run(
            ["bash", str(SETUP_SCRIPT), "setup"],
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
        )
        if done.returncode != 0:
            tail = (done.stdout + done.stderr)[-2000:]
            pytest.fail(f"{reason}; {SETUP_SCRIPT} setup failed:\n{tail}")
        return LXDClient.connect()


@pytest.fixture(scope="session")
def lxd() -> Iterator[LXDClient]:
    client = _connect_or_start()
    names = {a["name"] for a in client.image_aliases("default")}
    if IMAGE not in names:
        pytest.fail(f"LXD has no image alias {IMAGE!r}: run {SETUP_SCRIPT} setup")
    yield client
    client.close()


def pool_source(lxd: LXDClient, pool: str = POOL) -> Path:
    """Where a pool's volumes are: a dir pool's source; other drivers' mount point."""
    record = lxd.storage_pool(pool)
    if record.get("driver") == "dir":
        return Path(record["config"]["source"])
    assert lxd.socket_path is not None
    return lxd.socket_path.parent / "storage-pools" / pool


def host_base_ids(config: dict[str, str]) -> tuple[int, int]:
    """The host uid and gid that container root has on disk (section 8: the key that
    says how the files are shifted is volatile.last_state.idmap)."""
    uid = gid = 0
    for entry in json.loads(config.get("volatile.last_state.idmap") or "[]"):
        if entry.get("Nsid") == 0:
            if entry.get("Isuid"):
                uid = int(entry["Hostid"])
            if entry.get("Isgid"):
                gid = int(entry["Hostid"])
    return uid, gid


def _posix_acl(entries: list[tuple[int, int, int]]) -> bytes:
    """The kernel's binary system.posix_acl_access value: version 2, (tag, perm, id)."""
    out = (2).to_bytes(4, "little")
    for tag, perm, ident in entries:
        out += tag.to_bytes(2, "little") + perm.to_bytes(2, "little") + ident.to_bytes(4, "little")
    return out


def write_tree(root: Path, uid: int, gid: int) -> dict[str, bytes]:
    """Files of every type under ``root/root/tree``, owned by shifted ids (``uid``/``gid``
    is container root on the host). Returns {relative path: content} of regular files."""
    base = root / TREE
    base.mkdir(parents=True)
    contents: dict[str, bytes] = {}

    def own(p: Path | bytes, u: int = 0, g: int = 0) -> None:
        os.lchown(p, uid + u, gid + g)

    def put(name: str, data: bytes, mode: int = 0o644, u: int = 0, g: int = 0) -> Path:
        p = base / name
        p.write_bytes(data)
        own(p, u, g)
        os.chmod(p, mode)  # after chown, which clears setuid
        contents[f"{TREE}/{name}"] = data
        return p

    f = put("file.txt", b"hello\n", 0o640, 1000, 2000)
    os.utime(f, (MTIME, MTIME))
    put("setuid", b"#!/bin/sh\n", 0o4755)
    put("random.bin", secrets.token_bytes(256 * 1024))
    (base / "sticky").mkdir()
    own(base / "sticky")
    os.chmod(base / "sticky", 0o1777)
    (base / "empty").mkdir()
    own(base / "empty")
    os.symlink("file.txt", base / "link-rel")
    own(base / "link-rel")
    os.symlink("/nonexistent/target", base / "link-abs-dangling")
    own(base / "link-abs-dangling")
    os.link(f, base / "hard")
    os.mkfifo(base / "fifo")
    own(base / "fifo")
    os.mknod(base / "null", 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    own(base / "null")
    os.mknod(base / "loop0", 0o660 | stat.S_IFBLK, os.makedev(7, 0))
    own(base / "loop0")
    x = put("xattr.txt", b"xattrs\n")
    os.setxattr(x, "user.backuptest", b"value")
    os.setxattr(x, "trusted.foo", b"bar")
    a = put("acl.txt", b"acl\n", 0o664)
    # user:33:rw- (host-shifted id), mask rw-; skipped without ACL support
    with contextlib.suppress(OSError):
        os.setxattr(
            a,
            "system.posix_acl_access",
            _posix_acl(
                [
                    (0x01, 6, 0xFFFFFFFF),
                    (0x02, 6, uid + 33),
                    (0x04, 4, 0xFFFFFFFF),
                    (0x10, 6, 0xFFFFFFFF),
                    (0x20, 4, 0xFFFFFFFF),
                ]
            ),
        )
    sparse = base / "sparse"
    with open(sparse, "wb") as fh:
        fh.seek(SPARSE_SIZE // 2)
        fh.write(b"data")
        fh.truncate(SPARSE_SIZE)
    own(sparse)
    contents[f"{TREE}/sparse"] = sparse.read_bytes()
    odd = os.fsencode(str(base)) + b"/caf\xe9"  # not UTF-8: LXD writes it raw in a PAX path
    with open(odd, "wb") as fh:
        fh.write(b"latin-1 name\n")
    own(odd)
    own(base)
    return contents


@dataclass
class LXDTestProject:
    """A throwaway LXD project and a client bound to it."""

    name: str
    client: LXDClient
    admin: LXDClient  # the session client (default project)
    containers: list[str] = field(default_factory=list)
    tree: str = TREE  # where write_tree puts the file zoo, relative to a root
    mtime: int = MTIME

    @staticmethod
    def write_tree(root: Path, uid: int = 0, gid: int = 0) -> dict[str, bytes]:
        return write_tree(root, uid, gid)

    @staticmethod
    def host_base_ids(config: dict[str, str]) -> tuple[int, int]:
        return host_base_ids(config)

    def rootfs(self, instance: str, pool: str = POOL) -> Path:
        return pool_source(self.admin, pool) / "containers" / f"{self.name}_{instance}" / "rootfs"

    def volume_path(self, volume: str, pool: str = POOL) -> Path:
        return pool_source(self.admin, pool) / "custom" / f"{self.name}_{volume}"

    def lxc(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """``lxc --project P ARGS``; an ``exec`` first waits until the instance takes one."""
        if args[:1] == ("exec",):
            wait_until_exec_works(self.name, args[1])
        return subprocess.run(
            ["lxc", "--project", self.name, *args],
            capture_output=True,
            text=True,
            timeout=60,
            check=check,
        )

    def container(
        self,
        name: str | None = None,
        start: bool = True,
        files: bool = True,
        snapshot: str | None = "snap0",
        image: str = IMAGE,
        pool: str = POOL,
        config: dict[str, str] | None = None,
    ) -> str:
        """A container from ``tiny`` (or another image alias the project sees): started,
        the file zoo written into its rootfs (as the host, with the shifted ids),
        ``/root/hello`` written from inside, then snapshotted."""
        name = name or f"c{secrets.token_hex(3)}"
        devices = {"root": {"path": "/", "pool": pool, "type": "disk"}} if pool != POOL else None
        self.client.create_instance(name, image, config=config, devices=devices)
        self.containers.append(name)
        if start:
            self.client.start(name)
        if files:
            uid, gid = host_base_ids(self.client.instance(name)["config"])
            write_tree(self.rootfs(name, pool), uid, gid)
            if start:
                self.lxc("exec", name, "--", "sh", "-c", "echo hello > /root/hello")
        if snapshot:
            self.client.create_snapshot(name, snapshot)
        return name


def wait_until_exec_works(project: str, name: str, timeout: float = 60.0) -> None:
    """LXD answers ``start`` when the container's init has been spawned, not when it can
    run a command: an ``lxc exec`` right after it fails now and then on a loaded machine
    ("Failed to retrieve PID of executing child process" and the like). Wait for a ``true``
    to run, as a person would retry."""
    deadline = time.monotonic() + timeout
    while True:
        done = subprocess.run(["lxc", "--project", project, "exec", name, "--", "true"],
                              capture_output=True, text=True, timeout=60, check=False)
        if done.returncode == 0:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"lxc exec into {project}/{name} still fails after {timeout:.0f} s: "
                                 f"{done.stderr.strip()}")
        time.sleep(0.2)


def _delete_everything(lxd: LXDClient, project: str) -> None:
    """Empty the project (instances, custom volumes, profiles, and its own images,
    network ACLs and network zones) and delete it. A project that shares the default
    project's images (features.images=false) lists those: they are left alone."""
    features = lxd.project_record(project).get("config") or {}
    for inst in lxd.instances(project):
        if inst.get("status") != "Stopped":
            lxd.stop(inst["name"], force=True, project=project)
        lxd.delete_instance(inst["name"], project=project)
    for profile in lxd.profiles(project):  # before the volumes their devices use
        if profile["name"] != "default":
            lxd.delete_profile(profile["name"], project=project)
    for pool in lxd.storage_pools():
        for vol in lxd.custom_volumes(pool["name"], project):
            lxd.delete_custom_volume(pool["name"], vol["name"], project=project)
    if features.get("features.images") == "true":
        for image in lxd.images(project):
            lxd.delete_image(image["fingerprint"], project=project)
    if features.get("features.networks") == "true":
        for acl in lxd.network_acls(project):
            lxd.delete_network_acl(acl["name"], project=project)
        for zone in lxd.network_zones(project):
            lxd.delete_network_zone(zone["name"], project=project)
    lxd.delete_project(project)


def delete_project_if_there(lxd: LXDClient, name: str) -> None:
    """``_delete_everything``, tolerating a project that is not there (or vanishes)."""
    for attempt in range(3):
        if not any(p["name"] == name for p in lxd.projects()):
            return
        try:
            _delete_everything(lxd, name)
            return
        except LXDError:
            if attempt == 2:
                raise
            time.sleep(0.5)


@pytest.fixture
def lxd_project(lxd: LXDClient) -> Iterator[LXDTestProject]:
    name = f"dedupe-test-{secrets.token_hex(4)}"
    lxd.create_project(
        {
            "name": name,
            "description": "dedupe test (safe to delete)",
            "config": {
                "features.images": "false",
                "features.profiles": "true",
                "features.storage.volumes": "true",
                "features.networks": "false",
            },
        }
    )
    try:
        root = lxd.profile("default", "default")["devices"].get("root")
        if not root:
            pytest.fail("the default project's default profile has no root disk device")
        profile = lxd.profile("default", name)
        profile["devices"] = {"root": root}
        lxd.update_profile(profile, project=name)
        client = LXDClient.connect(project=name)
        yield LXDTestProject(name, client, lxd)
        client.close()
    finally:
        delete_project_if_there(lxd, name)


@pytest.fixture
def scratch_project(lxd: LXDClient) -> Iterator[str]:
    """The name of a project that does not exist yet (a restore may create it); it is
    emptied and deleted afterwards."""
    name = f"dedupe-test-{secrets.token_hex(4)}"
    yield name
    delete_project_if_there(lxd, name)


# --------------------------------------------------------------------------------------
# A second endpoint: the same daemon over HTTPS with a trusted client certificate


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def make_cert(cn: str, directory: Path) -> tuple[Path, Path, str]:
    """A self-signed client certificate: (cert path, key path, PEM)."""
    key = ec.generate_private_key(ec.SECP384R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .sign(key, hashes.SHA384())
    )
    pem = cert.public_bytes(serialization.Encoding.PEM)
    cert_path, key_path = directory / f"{cn}.crt", directory / f"{cn}.key"
    cert_path.write_bytes(pem)
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path, pem.decode()


@dataclass
class HTTPSRemote:
    url: str
    cert: Path
    key: Path
    server_cert: Path

    def options(self) -> list[str]:
        """The command-line options that reach it."""
        return [
            "--remote",
            self.url,
            "--cert",
            str(self.cert),
            "--key",
            str(self.key),
            "--server-cert",
            str(self.server_cert),
        ]


@pytest.fixture
def https_remote(lxd: LXDClient, tmp_path: Path) -> Iterator[HTTPSRemote]:
    """The daemon listening on 127.0.0.1:<free port> and trusting a fresh client
    certificate; both undone afterwards."""
    assert lxd.socket_path is not None
    old_address = lxd.server_config().get("core.https_address", "")
    port = free_port()
    cert, key, pem = make_cert(f"dedupe-test-{secrets.token_hex(3)}", tmp_path)
    fingerprint = ""
    try:
        lxd.patch_server_config({"core.https_address": f"127.0.0.1:{port}"})
        fingerprint = lxd.add_certificate(pem, name=cert.stem)
        server_cert = lxd.socket_path.parent / "server.crt"
        yield HTTPSRemote(f"https://127.0.0.1:{port}", cert, key, server_cert)
    finally:
        if fingerprint:
            with contextlib.suppress(LXDNotFound):
                lxd.delete_certificate(fingerprint)
        lxd.patch_server_config({"core.https_address": old_address})
