"""Issue #18, point 6: one rule for names out of the tree, the same for --to-dir,
--to-file and --stdout; ``--no-special`` for restores of backups one does not trust."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from dedupe import api
from dedupe_testing import RunCli, assert_clean_error
from repo_format import items as items_module


def _crafted_backup(repo_path: Path, src: Path, rename: dict[str, str]) -> str:
    """A directory backup of ``src`` whose item stream names entries as ``rename`` says
    (as someone who can write the repository and holds its keys could write it)."""
    real = items_module.entry_map

    def crafted(path: str, *args: object, **kwargs: object) -> dict[str, object]:
        return real(rename.get(path, path), *args, **kwargs)  # type: ignore[arg-type]

    items_module.entry_map = crafted  # type: ignore[assignment]
    try:
        return api.do_backup_dir(api.open_repo(str(repo_path)), "g", src, use_files_cache=False).id
    finally:
        items_module.entry_map = real


HOSTILE = {
    "dotdot": ({"f": "../escaped"}, "'../escaped'"),
    "absolute": ({"f": "/tmp/escaped-by-dedupe-test"}, "absolute"),
    "through a symlink": ({"l": "l", "l2": "l/evil"}, "'l/evil'"),
}


@pytest.mark.parametrize("case", HOSTILE, ids=list(HOSTILE))
def test_hostile_names_are_refused_by_every_restore_target(dedupe: RunCli, repo_path: Path, tmp_path: Path,
                                                           case: str) -> None:
    rename, words = HOSTILE[case]
    src = tmp_path / "src"
    src.mkdir()
    (src / "f").write_bytes(b"x")
    (src / "l").symlink_to("/etc")
    (src / "l2").write_bytes(b"evil")
    dedupe("init")
    bid = _crafted_backup(repo_path, src, rename)
    for target in (["--to-dir", str(tmp_path / "out")], ["--to-file", str(tmp_path / "o.tar")], ["--stdout"]):
        p = dedupe("restore", bid, *target, check=False)
        assert_clean_error(p, 51, words)
    assert not (tmp_path / "o.tar").exists() and not (tmp_path / "escaped").exists()
    assert not Path("/tmp/escaped-by-dedupe-test").exists()


def test_symlinks_out_of_the_tree_are_kept_verbatim_by_every_target(dedupe: RunCli, tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "d").mkdir(parents=True)
    (src / "d" / "up").symlink_to("../../outside")
    (src / "abs").symlink_to("/etc/passwd")
    dedupe("init")
    bid = json.loads(dedupe("backup", "dir", "g", str(src), "--json").stdout)["id"]
    dedupe("restore", bid, "--to-dir", str(tmp_path / "out"))
    assert os.readlink(tmp_path / "out" / "d" / "up") == "../../outside"
    assert os.readlink(tmp_path / "out" / "abs") == "/etc/passwd"
    dedupe("restore", bid, "--to-file", str(tmp_path / "o.tar"))
    import tarfile
    with tarfile.open(tmp_path / "o.tar") as tf:
        links = {m.name: m.linkname for m in tf if m.issym()}
    assert links == {"d/up": "../../outside", "abs": "/etc/passwd"}


@pytest.mark.needs_root("device nodes, setuid files owned by root")
def test_no_special_leaves_out_devices_setuid_and_capabilities(dedupe: RunCli, tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "suid").write_bytes(b"#!/bin/sh\n")
    os.chmod(src / "suid", 0o4755)
    (src / "sgid").write_bytes(b"x")
    os.chmod(src / "sgid", 0o2755)
    os.mknod(src / "null", 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    cap = bytes.fromhex("0100000200200000000000000000000000000000")  # v2: cap_net_bind_service permitted
    os.setxattr(src / "suid", "security.capability", cap)
    dedupe("init")
    bid = json.loads(dedupe("backup", "dir", "g", str(src), "--json").stdout)["id"]

    dedupe("restore", bid, "--to-dir", str(tmp_path / "as-stored"))  # as tar does, as root
    assert os.stat(tmp_path / "as-stored" / "suid").st_mode & 0o4000
    assert stat.S_ISCHR(os.lstat(tmp_path / "as-stored" / "null").st_mode)

    out = tmp_path / "safe"
    p = dedupe("restore", bid, "--to-dir", str(out), "--no-special", "--json")
    assert json.loads(p.stdout)["skipped"] == 1
    assert stat.S_IMODE(os.stat(out / "suid").st_mode) == 0o755
    assert stat.S_IMODE(os.stat(out / "sgid").st_mode) == 0o755
    assert not (out / "null").exists()
    assert "security.capability" not in os.listxattr(out / "suid")


def test_no_special_goes_with_to_dir(dedupe: RunCli) -> None:
    dedupe("init")
    p = dedupe("restore", "0123", "--stdout", "--no-special", check=False)
    assert_clean_error(p, 2, "--no-special")
