"""The gateway dies in the middle of a backup and of a copy: the command ends with a
one-line storage error, nothing is committed half-way, and once the gateway is back
the next run completes. (The gateway process is SIGKILLed and started again.)"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path


from conftest import CLI, RunCli, assert_clean_error
from s3.gateway import Gateway

PACK = 16 << 20  # the default pack size: the first pack goes up after this much new data


def _has_pack(gateway: Gateway, bucket: str) -> bool:
    return bool(gateway.client().list_objects_v2(Bucket=bucket, Prefix="repo/data/").get("KeyCount", 0))


def _wait_for_a_pack(gateway: Gateway, bucket: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _has_pack(gateway, bucket):
            return
        time.sleep(0.05)
    raise AssertionError("no pack was uploaded")


def _backups(dedupe: RunCli, repo: str | Path) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = json.loads(dedupe("list", "--json", repo=repo).stdout)
    return rows


def _assert_sound(dedupe: RunCli, repo: str | Path) -> None:
    report = json.loads(dedupe("check", "--json", repo=repo).stdout)
    assert report["ok"], report["errors"]


def test_gateway_dies_during_a_backup(dedupe: RunCli, gateway: Gateway, bucket: str, s3_url: str) -> None:
    dedupe("init")
    data = os.urandom(5 * PACK)
    env = {**os.environ, "DEDUPE_REPO": s3_url}
    p = subprocess.Popen([*CLI, "backup", "stream", "g", "-"], stdin=subprocess.PIPE, stderr=subprocess.PIPE,
                         stdout=subprocess.PIPE, env=env)
    assert p.stdin is not None
    sent = 0
    while not _has_pack(gateway, bucket):  # feed the backup until its first pack is stored
        assert sent < 4 * PACK, "no pack was uploaded"  # (the pipeline holds ~20 MiB in flight)
        p.stdin.write(data[sent:sent + (1 << 20)])
        p.stdin.flush()
        sent += 1 << 20
        time.sleep(0.02)
    gateway.kill()
    try:
        try:
            p.stdin.write(data[sent:])
        except BrokenPipeError:
            pass
        out, err = p.communicate(timeout=120)  # closes stdin: the end of the stream
        assert_clean_error(subprocess.CompletedProcess(p.args, p.returncode, out, err), 24, s3_url)
    finally:
        gateway.start()
    assert _backups(dedupe, s3_url) == []  # nothing committed
    _assert_sound(dedupe, s3_url)
    done = json.loads(dedupe("backup", "stream", "g", "-", "--json", input=data).stdout)
    assert dedupe("restore", done["id"], "--stdout").stdout == data
    _assert_sound(dedupe, s3_url)


def test_gateway_dies_during_a_copy(dedupe: RunCli, gateway: Gateway, bucket: str, s3_url: str,
                                    tmp_path: Path) -> None:
    local = tmp_path / "local"
    dedupe("init", repo=local)
    data = os.urandom(4 * PACK + 3_000_000)  # five packs: one up, four still to go when held
    dedupe("backup", "stream", "g", "-", input=data, repo=local)
    dedupe("init", "--copy-params-from", str(local))
    env = {**os.environ, "DEDUPE_REPO": str(local)}
    p = subprocess.Popen([*CLI, "copy", "--to", s3_url], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    _wait_for_a_pack(gateway, bucket)
    # The rest of the copy takes a fraction of a second, less than stopping the gateway
    # may: the copy is held (SIGSTOP) until the gateway is down, so it always meets the
    # outage part-way instead of sometimes finishing first.
    p.send_signal(signal.SIGSTOP)
    assert p.poll() is None, "the copy finished before the gateway could be stopped"
    gateway.kill()
    p.send_signal(signal.SIGCONT)
    try:
        out, err = p.communicate(timeout=120)
        assert_clean_error(subprocess.CompletedProcess(p.args, p.returncode, out, err), 24, s3_url)
    finally:
        gateway.start()
    assert _backups(dedupe, s3_url) == []
    _assert_sound(dedupe, s3_url)
    res = json.loads(dedupe("copy", "--to", s3_url, "--json", repo=local).stdout)
    assert len(res["copied"]) == 1
    (bid,) = [b["id"] for b in _backups(dedupe, s3_url)]
    assert dedupe("restore", str(bid), "--stdout").stdout == data
    _assert_sound(dedupe, s3_url)


def test_gateway_dies_during_a_gc(dedupe: RunCli, gateway: Gateway, s3_url: str) -> None:
    """gc in-process, the gateway killed between its two phases (after phase 1 wrote
    its repacked data and new segments, before the commit): a storage error, nothing
    lost, and the next gc finishes the job."""
    import io

    from dedupe import api
    from dedupe.errors import DedupeError
    from dedupe.maintenance.gc import GcOptions
    from dedupe.maintenance.prune import run_forget, run_gc

    dedupe("init")
    keep_data = os.urandom(2 * PACK)
    # a backup that shares half its packs with the one that stays: gc must repack
    drop_data = keep_data[:PACK] + os.urandom(PACK)
    repo = api.open_repo(s3_url)
    kept = api.do_backup_stream(repo, "keep", io.BytesIO(keep_data)).id
    dropped = api.do_backup_stream(repo, "drop", io.BytesIO(drop_data)).id
    run_forget(repo, [dropped])
    # the failing gc runs in a child process, as the CLI would: its lock stays behind
    # (the gateway is down when it tries to remove it) and must be seen as stale after
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        os.close(read)
        try:
            run_gc(api.open_repo(s3_url), GcOptions(max_unused=0.0, before_sweep=gateway.kill))
            message = "gc finished"
        except DedupeError as e:
            message = f"{e.exit_code} {e}"
        os.write(write, message.encode())
        os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as f:
        message = f.read().decode()
    os.waitpid(pid, 0)
    assert message.startswith("24 "), message
    gateway.start()
    _assert_sound(dedupe, s3_url)
    assert [b["id"] for b in _backups(dedupe, s3_url)] == [kept]
    assert dedupe("restore", kept, "--stdout").stdout == keep_data
    report = json.loads(dedupe("gc", "--max-unused", "0%", "--json").stdout)
    assert report["bytes_deleted"] > 0
    assert dedupe("restore", kept, "--stdout").stdout == keep_data
    assert dedupe("check", "--read-data").returncode == 0
