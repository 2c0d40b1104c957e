"""Issue #18, point 4, on the real Ceph gateway with two users: a backup host whose user
may read and create objects but delete only locks (the README's bucket policy, read from
the README itself) backs up, lists and restores; its forget, prune and gc fail with exit
26 and change nothing; the trusted side (the bucket owner) reads, checks, forgets and
collects what the host wrote (the bucket-owner-full-control grant)."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest

from dedupe_testing import CLI, RunCli, assert_clean_error
from s3.gateway import REPO, Gateway, ensure_user

HOST_USER = "dedupe-test-backup-host"


def readme_policy(bucket: str, prefix: str, user: str) -> str:
    text = (REPO / "README.md").read_text()
    block = re.search(r"<!-- write-only-policy -->\n```json\n(.*?)```", text, re.S)
    assert block is not None, "the README's write-only bucket policy is gone"
    policy = block.group(1).replace("HOST_USER", user).replace("BUCKET", bucket).replace("PREFIX", prefix)
    json.loads(policy)
    return policy


@pytest.fixture
def host(gateway: Gateway, bucket: str) -> Gateway:
    user = ensure_user(HOST_USER, "dedupetesthostkey", "dedupetesthostsecret")
    gateway.client().put_bucket_policy(Bucket=bucket, Policy=readme_policy(bucket, "repo", HOST_USER))
    return user


def _as(who: Gateway, s3_url: str, tmp_path: Path, *args: str, input: bytes | None = None,
        ) -> subprocess.CompletedProcess[bytes]:
    env = {**os.environ, **who.env(), "DEDUPE_REPO": s3_url,
           "XDG_CACHE_HOME": str(tmp_path / f"cache-{who.access_key}")}
    env.pop("DEDUPE_DEBUG", None)
    return subprocess.run([*CLI, *args], input=input, capture_output=True, env=env)


def _objects(gateway: Gateway, bucket: str) -> dict[str, str]:
    out = {}
    for page in gateway.client().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix="repo/"):
        for o in page.get("Contents", []):
            if "/locks/" not in o["Key"]:
                out[o["Key"]] = o["ETag"]
    return out


def test_a_write_only_host_backs_up_and_cannot_destroy(dedupe: RunCli, gateway: Gateway, host: Gateway,
                                                       bucket: str, s3_url: str, tmp_path: Path) -> None:
    dedupe("init")  # the trusted side (the bucket owner)
    first = json.loads(dedupe("backup", "stream", "g", "-", "--json", input=os.urandom(300_000)).stdout)["id"]

    data = os.urandom(3 << 20)
    p = _as(host, s3_url, tmp_path, "backup", "stream", "h", "-", "--json", input=data)
    assert p.returncode == 0, p.stderr.decode()
    hid = json.loads(p.stdout)["id"]
    p = _as(host, s3_url, tmp_path, "backup", "stream", "h", "-", "--json", input=data)  # all deduplicated
    assert p.returncode == 0, p.stderr.decode()
    assert _as(host, s3_url, tmp_path, "restore", hid, "--stdout").stdout == data
    assert _as(host, s3_url, tmp_path, "list").returncode == 0

    before = _objects(gateway, bucket)
    for argv in (["forget", first], ["forget", hid], ["prune", "--keep-last", "1", "--force"], ["gc"]):
        p = _as(host, s3_url, tmp_path, *argv)
        assert_clean_error(p, 26, "access denied")
        assert _objects(gateway, bucket) == before, argv
    # the policy itself, beyond what dedupe does
    from botocore.exceptions import ClientError
    with pytest.raises(ClientError, match="AccessDenied"):
        host.client().delete_object(Bucket=bucket, Key=next(k for k in before if "/manifests/" in k))

    # the trusted side reads, checks and removes what the host wrote
    assert dedupe("restore", hid, "--stdout").stdout == data
    dedupe("check", "--read-data")
    dedupe("forget", hid)
    dedupe("gc", "--max-unused", "0%")
    dedupe("check", "--read-data")
    assert hid not in dedupe("list").stdout.decode()


def test_content_named_objects_are_never_overwritten(gateway: Gateway, bucket: str) -> None:
    """What no Ceph policy can deny, dedupe does not do: a put of a name under data/,
    index/ or manifests/ that exists leaves the object as it was (If-None-Match)."""
    storage = gateway.storage(f"s3://{bucket}/repo")
    for name in ("data/ab/abc", "index/abc", "manifests/abc"):
        storage.put(name, b"first")
        storage.put(name, b"second")
        assert storage.get(name) == b"first"
    storage.put("keys/repokey", b"first")
    storage.put("keys/repokey", b"second")  # change-passphrase rewrites the key file
    assert storage.get("keys/repokey") == b"second"
