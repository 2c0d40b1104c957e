"""The command line with ``--repo s3://...``: same commands, same behaviour, and
one-line errors for wrong credentials, a missing bucket and a bucket that holds no
repository."""

from __future__ import annotations

import io
import json
import os
import tarfile
from pathlib import Path

from conftest import CLI, RunCli, assert_clean_error
from s3.gateway import Gateway, empty_bucket


def _tar_bytes(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mtime = 1_700_000_000
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def test_round_trips(dedupe: RunCli, s3_url: str, tmp_path: Path) -> None:
    dedupe("init")
    data = os.urandom(3_000_000) + b"z" * 2_000_000
    one = json.loads(dedupe("backup", "stream", "db/dump", "-", "--json", input=data).stdout)
    two = json.loads(dedupe("backup", "stream", "db/dump", "-", "--json", input=data).stdout)
    assert two["new_bytes"] <= 70_000  # deduplicated against the first
    tar = _tar_bytes({"etc/hostname": b"c1\n", "var/big": os.urandom(1_500_000)})
    t = json.loads(dedupe("backup", "tar", "lxd/default/instance/c1", "-", "--json", input=tar).stdout)
    tree = tmp_path / "tree"
    (tree / "sub").mkdir(parents=True)
    (tree / "sub" / "f").write_bytes(b"hello tree")
    d = json.loads(dedupe("backup", "dir", "host/etc", str(tree), "--json").stdout)

    rows = json.loads(dedupe("list", "--json").stdout)
    assert [r["id"] for r in rows] == [one["id"], two["id"], t["id"], d["id"]]
    assert "db/dump" in dedupe("show", one["id"][:8]).stdout.decode()
    assert dedupe("restore", two["id"], "--stdout").stdout == data
    dedupe("restore", t["id"], "--to-file", str(tmp_path / "c1.tar"))
    assert (tmp_path / "c1.tar").read_bytes() == tar
    dedupe("restore", d["id"], "--to-dir", str(tmp_path / "back"))
    assert (tmp_path / "back" / "sub" / "f").read_bytes() == b"hello tree"
    assert "etc/hostname" in dedupe("ls", t["id"]).stdout.decode()
    report = json.loads(dedupe("check", "--read-data", "--json").stdout)
    assert report["ok"] and report["backups"] == 4


def test_endpoint_option_and_long_location(dedupe: RunCli, gateway: Gateway, bucket: str,
                                           monkeypatch: object) -> None:
    env_free = {k: v for k, v in os.environ.items() if k != "DEDUPE_S3_ENDPOINT"}
    import subprocess

    run = lambda *a: subprocess.run([*CLI, *a], env=env_free, capture_output=True)  # noqa: E731
    url = f"s3://{bucket}/opt"
    p = run("--s3-endpoint", gateway.endpoint, "--repo", url, "init")
    assert p.returncode == 0, p.stderr
    p = run("--s3-endpoint", gateway.endpoint, "--repo", url, "backup", "stream", "g", os.devnull)
    assert p.returncode == 0, p.stderr
    long = f"s3:{gateway.endpoint}/{bucket}/opt"
    p = run("--repo", long, "list", "--json")
    assert p.returncode == 0 and len(json.loads(p.stdout)) == 1, p.stderr


def test_endpoint_option_wins_over_the_environment_in_both_positions(gateway: Gateway, bucket: str) -> None:
    """$DEDUPE_S3_ENDPOINT names a port where nothing answers; ``--s3-endpoint`` before or
    after the command names the gateway, and wins."""
    import subprocess

    env = {**os.environ, "DEDUPE_S3_ENDPOINT": "http://127.0.0.1:9", "DEDUPE_S3_MAX_ATTEMPTS": "1",
           "DEDUPE_REPO": f"s3://{bucket}/pos"}
    run = lambda *a: subprocess.run([*CLI, *a], env=env, capture_output=True)  # noqa: E731
    option = ["--s3-endpoint", gateway.endpoint]
    p = run(*option, "init")
    assert p.returncode == 0, p.stderr
    p = run("backup", "stream", "g", os.devnull, *option)
    assert p.returncode == 0, p.stderr
    for argv in ([*option, "list", "--json"], ["list", "--json", *option]):
        p = run(*argv)
        assert p.returncode == 0 and len(json.loads(p.stdout)) == 1, (argv, p.stderr)
    assert run("list").returncode != 0  # without the option, the environment's dead endpoint


def test_wrong_credentials(dedupe: RunCli, monkeypatch: object) -> None:
    dedupe("init")
    import pytest
    mp: pytest.MonkeyPatch = monkeypatch  # type: ignore[assignment]
    mp.setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret")
    assert_clean_error(dedupe("list", check=False), 26, "access denied", "s3://")
    mp.setenv("AWS_ACCESS_KEY_ID", "nobody")
    assert_clean_error(dedupe("backup", "stream", "g", "-", input=b"x", check=False), 26, "access denied")


def test_missing_bucket(dedupe: RunCli) -> None:
    p = dedupe("list", repo="s3://dedupe-no-such-bucket/r", check=False)
    assert_clean_error(p, 27, "no such bucket", "dedupe-no-such-bucket")


def test_bucket_that_is_not_a_repository(dedupe: RunCli, gateway: Gateway, bucket: str) -> None:
    gateway.client().put_object(Bucket=bucket, Key="photos/cat.jpg", Body=b"meow")
    assert_clean_error(dedupe("list", repo=f"s3://{bucket}/photos", check=False), 11,
                       "not a dedupe repository", f"s3://{bucket}/photos")
    assert_clean_error(dedupe("init", repo=f"s3://{bucket}/photos", check=False), 14, "holds objects already")


def test_init_makes_the_bucket_and_refuses_an_existing_repository(dedupe: RunCli, gateway: Gateway) -> None:
    name = f"dt-new-{os.urandom(4).hex()}"
    try:
        dedupe("init", repo=f"s3://{name}")
        assert_clean_error(dedupe("init", repo=f"s3://{name}", check=False), 14, "repository already")
        dedupe("backup", "stream", "g", "-", input=b"root of the bucket", repo=f"s3://{name}")
        assert dedupe("check", "--read-data", repo=f"s3://{name}").returncode == 0
    finally:
        c = gateway.client()
        empty_bucket(c, name)
        c.delete_bucket(Bucket=name)
