"""The command line end to end: stream backups, list, show, restore, check, errors."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import blake3
import pytest

from dedupe_testing import CLI, RunCli, assert_clean_error, measured
from repo_format import layout


def backup_ids(dedupe: RunCli) -> list[str]:
    return [b["id"] for b in json.loads(dedupe("list", "--json").stdout)]


def files_of(repo: Path) -> dict[str, bytes]:
    return {str(p.relative_to(repo)): p.read_bytes() for p in sorted(repo.rglob("*"))
            if p.is_file() and not str(p.relative_to(repo)).startswith("locks")}


@pytest.mark.parametrize("data", [b"", b"x", os.urandom(3_000_000), b"0123456789" * 500_000],
                         ids=["empty", "tiny", "random", "repetitive"])
def test_round_trip_from_file_and_stdin(dedupe: RunCli, tmp_path: Path, data: bytes) -> None:
    dedupe("init")
    src = tmp_path / "src.bin"
    src.write_bytes(data)
    out = json.loads(dedupe("backup", "stream", "db/dump", str(src), "--json").stdout)
    assert out["size"] == len(data) and out["group"] == "db/dump"
    assert out["blake3"] == blake3.blake3(data).hexdigest()
    dedupe("backup", "stream", "db/dump", "-", input=data)
    ids = backup_ids(dedupe)
    assert len(ids) == 2
    for bid in ids:
        dest = tmp_path / f"out-{bid[:8]}"
        dedupe("restore", bid[:10], "--to-file", str(dest))
        assert dest.read_bytes() == data
        assert dedupe("restore", bid, "--stdout").stdout == data
    second = json.loads(dedupe("show", ids[1], "--json").stdout)
    assert second["new_bytes"] <= 70_000  # only the item stream can be new; the data was deduplicated
    assert dedupe("check", "--read-data").returncode == 0


def test_list_and_show(dedupe: RunCli, tmp_path: Path) -> None:
    dedupe("init")
    dedupe("backup", "stream", "a", "-", input=os.urandom(100_000))
    dedupe("backup", "stream", "b/x", "-", input=b"hello")
    rows = json.loads(dedupe("list", "--json").stdout)
    assert [r["group"] for r in rows] == ["a", "b/x"]
    for key in ("id", "time", "group", "size", "new_bytes", "new_stored", "stored_bytes"):
        assert key in rows[0]
    assert rows[0]["size"] == 100_000 and rows[0]["new_bytes"] >= 100_000
    assert [r["group"] for r in json.loads(dedupe("list", "--group", "b", "--json").stdout)] == ["b/x"]
    text = dedupe("list").stdout.decode()
    assert rows[0]["short_id"] in text and "b/x" in text
    shown = dedupe("show", rows[1]["id"][:6]).stdout.decode()
    assert "b/x" in shown and "5 bytes" in shown


def test_json_output_is_only_json(dedupe: RunCli) -> None:
    p = dedupe("init", "--json")
    json.loads(p.stdout)
    p = dedupe("backup", "stream", "g", "-", "--json", input=b"data")
    assert json.loads(p.stdout)["size"] == 4 and p.stderr == b""


def test_repo_from_option_before_the_command(dedupe: RunCli, repo_path: Path) -> None:
    dedupe("--repo", str(repo_path), "init", repo=None)
    dedupe("--repo", str(repo_path), "backup", "stream", "g", "-", input=b"x", repo=None)
    assert len(json.loads(dedupe("--repo", str(repo_path), "--json", "list", repo=None).stdout)) == 1


# -- bad input ---------------------------------------------------------------------------


def test_missing_repository(dedupe: RunCli, tmp_path: Path) -> None:
    assert_clean_error(dedupe("list", repo=tmp_path / "nope", check=False), 10, "nope", "no such directory")


def test_not_a_repository(dedupe: RunCli, tmp_path: Path) -> None:
    (tmp_path / "plain").mkdir()
    (tmp_path / "plain" / "file").write_text("hi")
    assert_clean_error(dedupe("list", repo=tmp_path / "plain", check=False), 11, "not a dedupe repository")


def test_no_repository_given(dedupe: RunCli) -> None:
    p = dedupe("list", repo=None, check=False)
    assert p.returncode == 2 and b"--repo" in p.stderr and b"Traceback" not in p.stderr


def test_init_refuses_an_existing_repository(dedupe: RunCli) -> None:
    dedupe("init")
    assert_clean_error(dedupe("init", check=False), 14, "not an empty directory")


def test_newer_format_is_refused(dedupe: RunCli, repo_path: Path) -> None:
    dedupe("init")
    cfg = repo_path / layout.CONFIG
    data = bytearray(cfg.read_bytes())
    data[4] = 9
    cfg.write_bytes(bytes(data))
    assert_clean_error(dedupe("list", check=False), 12, "newer dedupe")


def test_unknown_and_ambiguous_ids(dedupe: RunCli, repo_path: Path) -> None:
    from dedupe import api
    dedupe("init")
    repo = api.open_repo(str(repo_path))
    import io
    for i in range(17):  # 17 backups: two must share a first hex digit
        api.do_backup_stream(repo, "g", io.BytesIO(b"%d" % i))
    ids = backup_ids(dedupe)
    firsts = [i[0] for i in ids]
    dup = next(c for c in firsts if firsts.count(c) > 1)
    assert_clean_error(dedupe("show", dup, check=False), 31, "ambiguous")
    missing = next(c + "0" * 11 for c in "0123456789abcdef" if not any(i.startswith(c + "0" * 11) for i in ids))
    assert_clean_error(dedupe("show", missing, check=False), 30, "no backup")
    assert_clean_error(dedupe("restore", "zz", "--stdout", check=False), 30, "not a backup id")


def _two_backups_one_damaged(dedupe: RunCli, repo_path: Path, damage: str) -> tuple[str, str, str]:
    dedupe("init")
    dedupe("backup", "stream", "a", "-", input=os.urandom(2_000_000))
    packs_before = {p.name for p in (repo_path / "data").rglob("*") if p.is_file()}
    dedupe("backup", "stream", "b", "-", input=os.urandom(2_000_000))
    a, b = backup_ids(dedupe)
    new_pack = next(p for p in (repo_path / "data").rglob("*") if p.is_file() and p.name not in packs_before)
    data = bytearray(new_pack.read_bytes())
    if damage == "flip":
        data[len(data) // 3] ^= 0x40
        new_pack.write_bytes(bytes(data))
    elif damage == "truncate":
        new_pack.write_bytes(bytes(data[: len(data) // 2]))
    else:
        new_pack.unlink()
    return a, b, new_pack.name


@pytest.mark.parametrize("damage, restore_code, words", [
    ("flip", 20, "in pack"), ("truncate", 20, "truncated"), ("missing", 22, "missing")])
def test_damaged_pack(dedupe: RunCli, repo_path: Path, tmp_path: Path, damage: str, restore_code: int,
                      words: str) -> None:
    a, b, pack = _two_backups_one_damaged(dedupe, repo_path, damage)
    before = files_of(repo_path)
    p = dedupe("check", "--read-data", check=False)
    assert p.returncode == 25
    out = p.stdout.decode()
    assert pack[:12] in out and b[:12] in out, out
    report = json.loads(dedupe("check", "--read-data", "--json", check=False).stdout)
    assert pack in report["damaged_packs"] and b in report["damaged_backups"] and a not in report["damaged_backups"]
    dest = tmp_path / "out"
    assert_clean_error(dedupe("restore", b, "--to-file", str(dest), check=False), restore_code, words)
    assert not dest.exists() and not list(tmp_path.glob(".out*"))  # no half-written file left
    assert dedupe("restore", a, "--stdout").stdout  # the unaffected backup still restores
    assert files_of(repo_path) == before  # errors change nothing in the repository


def test_read_data_subsets_find_a_flipped_bit_in_their_own_group_only(dedupe: RunCli, repo_path: Path) -> None:
    """``check --read-data-subset n/t``: the structural check passes (the pack's size
    and table are intact); the group holding the damaged pack finds it, the other
    groups read their packs and pass, and the groups together read every pack once."""
    _a, b, pack = _two_backups_one_damaged(dedupe, repo_path, "flip")
    packs = {p.name for p in (repo_path / "data").rglob("*") if p.is_file()}
    assert dedupe("check").returncode == 0
    t = 3
    reports = [json.loads(dedupe("check", "--read-data-subset", f"{n}/{t}", "--json", check=False).stdout)
               for n in range(1, t + 1)]
    damaged_group = int(pack[:8], 16) % t
    for n, report in enumerate(reports):
        assert report["ok"] is (n != damaged_group), report
        assert (pack in report["damaged_packs"]) is (n == damaged_group)
    assert sum(r["packs_read"] for r in reports) == len(packs) == reports[0]["packs"]
    some = json.loads(dedupe("check", "--read-data-subset", "50%", "--json", check=False).stdout)
    assert some["ok"] in (True, False) and some["packs_read"] == max(1, round(len(packs) * 0.5))
    text = dedupe("check", "--read-data-subset", "100%", check=False).stdout.decode()
    assert f"({len(packs)} of {len(packs)} packs)" in text and b[:12] in text
    for bad in ("0/3", "4/3", "x/3", "0%", "101%", "1/0", "half"):
        assert_clean_error(dedupe("check", "--read-data-subset", bad, check=False), 2, "--read-data-subset",
                           "n/t")


def test_missing_input_file(dedupe: RunCli, tmp_path: Path) -> None:
    dedupe("init")
    assert_clean_error(dedupe("backup", "stream", "g", str(tmp_path / "nope"), check=False), 70, "nope")


# -- concurrency and crashes --------------------------------------------------------------


def test_two_backups_at_the_same_time(dedupe: RunCli, repo_path: Path, tmp_path: Path) -> None:
    dedupe("init")
    shared = os.urandom(3_000_000)
    inputs = [shared + os.urandom(1_000_000), shared + os.urandom(1_000_000)]
    env = {**os.environ, "DEDUPE_REPO": str(repo_path)}
    procs = [subprocess.Popen([*CLI, "backup", "stream", f"g{i}", "-"], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env) for i in range(2)]
    for p, data in zip(procs, inputs):  # interleave the input so both are mid-backup together
        p.stdin.write(data[:2_000_000])
    for p, data in zip(procs, inputs):
        p.stdin.write(data[2_000_000:])
        p.stdin.close()
    for p in procs:
        assert p.wait() == 0, p.stderr.read()
    rows = json.loads(dedupe("list", "--json").stdout)
    assert sorted(r["group"] for r in rows) == ["g0", "g1"]
    for r in rows:
        data = inputs[int(r["group"][1])]
        assert dedupe("restore", r["id"], "--stdout").stdout == data
    assert dedupe("check", "--read-data").returncode == 0


def test_lock_left_by_a_killed_backup_does_not_block(dedupe: RunCli, repo_path: Path) -> None:
    dedupe("init")
    env = {**os.environ, "DEDUPE_REPO": str(repo_path)}
    p = subprocess.Popen([*CLI, "backup", "stream", "g", "-"], stdin=subprocess.PIPE, env=env,
                         stderr=subprocess.DEVNULL)
    p.stdin.write(os.urandom(5_000_000))
    p.stdin.flush()
    for _ in range(100):
        if list((repo_path / "locks").iterdir()):
            break
        time.sleep(0.05)
    assert list((repo_path / "locks").iterdir()), "the backup should hold a lock"
    p.send_signal(signal.SIGKILL)
    p.wait()
    assert list((repo_path / "locks").iterdir())  # the lock is still there
    assert dedupe("check", "--read-data").returncode == 0  # and is recognised as stale
    dedupe("backup", "stream", "g", "-", input=b"after the crash")
    assert len(backup_ids(dedupe)) == 1


# -- big streams and memory ---------------------------------------------------------------


def _stream_through(repo_path: Path, total: int) -> tuple[int, str]:
    """Back up ``total`` bytes fed through stdin; return (peak RSS in KiB, backup id)."""
    env = {**os.environ, "DEDUPE_REPO": str(repo_path)}
    report = repo_path.parent / "rss"
    p = subprocess.Popen(measured([*CLI, "backup", "stream", "big", "-", "--json"], str(report)),
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)
    xof = blake3.blake3(b"big stream")
    block = 1 << 20
    sent = 0
    while sent < total:
        rnd = xof.digest(length=block // 2, seek=sent)  # half random, half compressible
        p.stdin.write(rnd + (b"log %d\n" % sent) * (block // 2 // len(b"log %d\n" % sent)))
        p.stdin.write(b"\0" * (block - len(rnd) - (block // 2 // len(b"log %d\n" % sent)) * len(b"log %d\n" % sent)))
        sent += block
    p.stdin.close()
    out = p.stdout.read()
    assert p.wait() == 0
    return int(report.read_text()), json.loads(out)["id"]


@pytest.mark.slow
def test_several_gigabytes_in_bounded_memory(dedupe: RunCli, repo_path: Path) -> None:
    dedupe("init")
    # 1 GiB fills every buffer of the pipeline (packs, chunks in flight, uploads, and
    # the read-buffer pool, which is capped but fills only as far as reads need it)
    # both measured runs open a repository with an index (numpy loads only for one)
    _stream_through(repo_path, 1 << 20)
    small_rss, _ = _stream_through(repo_path, 1 << 30)
    big_rss, big_id = _stream_through(repo_path, 3 << 30)
    assert big_rss < small_rss + 30 * 1024, (small_rss, big_rss)  # KiB: no growth with the stream's size
    assert big_rss < 200 * 1024
    # restore streams it back and verifies the BLAKE3 of all 3 GiB
    env = {**os.environ, "DEDUPE_REPO": str(repo_path)}
    report = repo_path.parent / "rss"
    p = subprocess.Popen(measured([*CLI, "restore", big_id, "--stdout"], str(report)), stdout=subprocess.PIPE, env=env)
    n = 0
    while chunk := p.stdout.read(1 << 20):
        n += len(chunk)
    assert p.wait() == 0 and n == 3 << 30
    assert int(report.read_text()) < 200 * 1024
