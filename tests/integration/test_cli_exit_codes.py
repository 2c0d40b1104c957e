"""Issue #18, point 5: every case the adversarial run found ending in exit 1 (an internal
error) or in click's four-line usage text ends in one ``dedupe:`` line and its documented
exit code."""

from __future__ import annotations

import errno
import io
import os
import subprocess
import tarfile
from pathlib import Path

import pytest

from dedupe_testing import RunCli, assert_clean_error


@pytest.fixture
def one_backup(dedupe: RunCli) -> str:
    dedupe("init")
    p = dedupe("backup", "stream", "g", "-", "--json", input=os.urandom(300_000))
    import json
    return str(json.loads(p.stdout)["id"])


# -- usage errors: one line, exit 2 -------------------------------------------------------

USAGE_ERRORS = [
    (["list"], None, "no repository given"),
    (["--repo"], None, "--repo"),
    (["prune", "--keep-daily", "abc"], "repo", "--keep-daily"),
    (["gc", "--max-unused", "150%"], "repo", "150%"),
    (["gc", "--max-unused", "abc"], "repo", "abc"),
    (["backup", "stream", "g", "-", "--compression", "lz4"], "repo", "lz4"),
    (["backup", "stream", "g", "-", "--compression", "zstd,99"], "repo", "zstd,99"),
    (["restore", "0123"], "repo", "give exactly one of"),
    (["restore"], "repo", "give exactly one of"),
    (["restore", "0123", "--to-file", "-", "--stdout"], "repo", "--to-file - is --stdout"),
    (["nosuchcommand"], "repo", "nosuchcommand"),
    (["list", "--nosuchoption"], "repo", "--nosuchoption"),
]


@pytest.mark.parametrize(("argv", "repo", "words"), USAGE_ERRORS, ids=[" ".join(a) for a, _, _ in USAGE_ERRORS])
def test_usage_errors_are_one_dedupe_line_and_exit_2(dedupe: RunCli, repo_path: Path, argv: list[str],
                                                     repo: str | None, words: str) -> None:
    if repo:
        dedupe("init")
    p = dedupe(*argv, repo=repo_path if repo else None, check=False, input=b"")
    assert_clean_error(p, 2, words)
    assert "Usage:" not in p.stderr.decode()


def test_restore_to_file_naming_a_directory_is_a_usage_error(dedupe: RunCli, one_backup: str,
                                                            tmp_path: Path) -> None:
    p = dedupe("restore", one_backup, "--to-file", str(tmp_path), check=False)
    assert_clean_error(p, 2, "--to-file", "directory")


def test_help_still_shows_the_usage(dedupe: RunCli) -> None:
    p = dedupe("--help", repo=None)
    assert p.stdout.startswith(b"Usage:")
    p = dedupe("prune", "--help", repo=None)
    assert b"--keep-within" in p.stdout


# -- internal errors that have a documented code -------------------------------------------

def test_restore_to_file_in_a_missing_directory_is_exit_24(dedupe: RunCli, one_backup: str, tmp_path: Path) -> None:
    target = tmp_path / "no" / "such" / "dir" / "out"
    p = dedupe("restore", one_backup, "--to-file", str(target), check=False)
    assert_clean_error(p, 24, str(target), "No such file or directory")
    assert not (tmp_path / "no").exists()


def test_restore_to_file_dash_is_standard_output(dedupe: RunCli, one_backup: str, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """``--to-file -`` writes to standard output (as tar's and borg's ``-``), never a file named ``-``."""
    monkeypatch.chdir(tmp_path)
    by_dash = dedupe("restore", one_backup, "--to-file", "-")
    by_flag = dedupe("restore", one_backup, "--stdout")
    assert len(by_dash.stdout) == 300_000 and by_dash.stdout == by_flag.stdout
    assert not (tmp_path / "-").exists()


def test_restore_stdout_onto_a_full_disk_is_exit_24(dedupe: RunCli, one_backup: str, repo_path: Path) -> None:
    env = {**os.environ, "DEDUPE_REPO": str(repo_path)}
    env.pop("DEDUPE_DEBUG", None)
    with open("/dev/full", "wb") as full:
        p = subprocess.run([*__import__("dedupe_testing").CLI, "restore", one_backup, "--stdout"],
                           stdout=full, stderr=subprocess.PIPE, env=env)
    assert_clean_error(p, 24, "standard output", "No space left on device")


def test_restore_to_file_onto_a_full_disk_is_exit_24_and_leaves_nothing(mem_repo: object, tmp_path: Path) -> None:
    """ENOSPC while writing (a unit test: a full file system of one's own needs a mount)."""
    from dedupe.read import RestoreTargetError, restore_to_file

    def full_disk(_repo: object, _m: object, f: io.BufferedWriter, _id: str, _progress: object) -> int:
        f.write(b"x" * 10)
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    target = tmp_path / "out"
    with pytest.raises(RestoreTargetError) as e:
        restore_to_file(mem_repo, None, target, "id", None, full_disk)  # type: ignore[arg-type]
    assert e.value.exit_code == 24 and "No space left on device" in str(e.value)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("within", ["99999999999999999999y", "10001y", "999999999999h", "99999999999999m"])
def test_prune_keep_within_beyond_any_calendar_is_exit_80(dedupe: RunCli, one_backup: str, within: str) -> None:
    p = dedupe("prune", "--keep-within", within, "--dry-run", check=False)
    assert_clean_error(p, 80, "too long")


def test_prune_keep_within_before_year_one_keeps_everything(dedupe: RunCli, one_backup: str) -> None:
    p = dedupe("prune", "--keep-within", "5000y", "--json")
    assert one_backup not in str(__import__("json").loads(p.stdout).get("removed", []))
    assert one_backup in dedupe("list", "--json").stdout.decode()


def _tar_with_owner(uid: int, gid: int) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tf:
        info = tarfile.TarInfo("f.txt")
        info.size, info.uid, info.gid, info.mode = 5, uid, gid, 0o644
        tf.addfile(info, io.BytesIO(b"hello"))
    return buf.getvalue()


@pytest.mark.parametrize(("uid", "gid"), [(1 << 40, 7), (7, (1 << 32) - 1)])
def test_restore_of_an_impossible_owner_warns_instead_of_crashing(dedupe: RunCli, tmp_path: Path,
                                                                  uid: int, gid: int) -> None:
    """An owner past uid_t (GNU base-256 allows it) or uid_t's -1 (chown's "leave it"):
    the file is restored, its owner not set, and a warning says so (exit 3). (A negative
    one the tar reader refuses, and a crafted item's is damage: the next test.)"""
    dedupe("init")
    src = tmp_path / "in.tar"
    src.write_bytes(_tar_with_owner(uid, gid))
    import json
    bid = json.loads(dedupe("backup", "tar", "g", str(src), "--json").stdout)["id"]
    p = dedupe("restore", bid, "--to-dir", str(tmp_path / "out"), check=False)
    assert p.returncode == 3, p.stderr.decode()
    assert "Traceback" not in p.stderr.decode() and "not a valid uid:gid" in p.stderr.decode()
    assert (tmp_path / "out" / "f.txt").read_bytes() == b"hello"
    out = tmp_path / "back.tar"
    dedupe("restore", bid, "--to-file", str(out))
    assert out.read_bytes() == src.read_bytes()


def test_smallest_chunker_section_4_2_allows_makes_backups(tmp_path: Path, dedupe: RunCli,
                                                          repo_path: Path) -> None:
    from dedupe import api
    from repo_format.config import ChunkerParams
    api.init(str(repo_path), ChunkerParams(64, 256, 1024), passphrase=None)
    data = os.urandom(50_000)
    import json
    bid = json.loads(dedupe("backup", "stream", "g", "-", "--json", input=data).stdout)["id"]
    assert dedupe("restore", bid, "--stdout").stdout == data


def test_a_chunker_fastcdc_cannot_cut_is_damage_not_a_crash(tmp_path: Path, dedupe: RunCli,
                                                             repo_path: Path) -> None:
    """A config (hand-written, or from an older text of section 4.2) whose chunker no
    implementation can make is refused when read (exit 11, as any config that does not
    decode), naming the range; never a crash in the middle of a backup."""
    from repo_format import config
    dedupe("init", "--encryption", "none")
    path = repo_path / "config"
    cfg = config.decode(path.read_bytes())
    import dataclasses
    bad = dataclasses.replace(cfg, chunker=config.ChunkerParams(64, 64, 64))
    os.chmod(path, 0o644)
    path.write_bytes(config.encode(bad))
    p = dedupe("backup", "stream", "g", "-", input=b"x" * 1000, check=False)
    assert_clean_error(p, 11, "chunker parameters out of range")


@pytest.mark.parametrize("field", ["u", "g"])
@pytest.mark.parametrize("value", [-1, -5, -(1 << 70), "0", 1.5, True])
def test_a_crafted_item_with_a_negative_or_odd_owner_is_damage(field: str, value: object) -> None:
    """Found as an OverflowError (exit 1) in a restore: now exit 20 when the item is read."""
    from repo_format.errors import FormatError
    from repo_format.items import entry_fields
    with pytest.raises(FormatError) as e:
        entry_fields({"k": "e", "p": "etc/passwd", "t": "f", field: value})
    assert e.value.exit_code == 20 and "etc/passwd" in str(e.value)


def test_restore_of_a_crafted_negative_owner_is_exit_20(dedupe: RunCli, tmp_path: Path, repo_path: Path) -> None:
    """A directory backup whose item stream was written with a negative uid (as someone who
    can write the repository and knows its keys could): every restore path says 20."""
    from dedupe import api
    from repo_format import items as items_module

    dedupe("init")
    src = tmp_path / "src"
    src.mkdir()
    (src / "f").write_bytes(b"data")
    real = items_module.entry_map

    def crafted(*args: object, **kwargs: object) -> dict[str, object]:
        item = real(*args, **kwargs)  # type: ignore[arg-type]
        item["u"] = -5
        return item

    items_module.entry_map = crafted  # type: ignore[assignment]
    try:
        repo = api.open_repo(str(repo_path))
        bid = api.do_backup_dir(repo, "g", src, use_files_cache=False).id
    finally:
        items_module.entry_map = real
    for target in (["--to-dir", str(tmp_path / "out")], ["--to-file", str(tmp_path / "o.tar")]):
        p = dedupe("restore", bid, *target, check=False)
        assert_clean_error(p, 20, "owner -5")
