"""The storage protocol on a real S3 server: the same contract tests as the local
directory and the in-memory twin (tests/unit/test_storage.py), then what only object
storage has: multipart uploads, refused corrupt uploads, paginated listings,
racing conditional creates, retries, and one-line errors."""

from __future__ import annotations

import os
import threading
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from s3.gateway import Gateway
from dedupe.storage import ObjectExists, ObjectNotFound, Storage, StorageError
from dedupe.storage import s3 as s3mod
from dedupe.storage.cache import CachedStorage
from dedupe.storage.s3 import BucketNotFound, S3AccessDenied, S3Storage
from unit import test_storage as contract

# The shared contract, run here against S3 (plain and behind the local cache).
test_put_get_range_size = contract.test_put_get_range_size
test_list_is_recursive_and_sized = contract.test_list_is_recursive_and_sized
test_create_is_conditional = contract.test_create_is_conditional
test_missing_and_delete = contract.test_missing_and_delete


@pytest.fixture(params=["s3", "s3+cache"])
def storage(request: pytest.FixtureRequest, gateway: Gateway, s3_url: str, tmp_path: Path) -> Storage:
    s = gateway.storage(s3_url)
    return s if request.param == "s3" else CachedStorage(s, tmp_path / "c")


@pytest.fixture
def s3(gateway: Gateway, s3_url: str) -> S3Storage:
    return gateway.storage(s3_url)


def test_prefix_keeps_repositories_apart(gateway: Gateway, bucket: str) -> None:
    a, b, root = (gateway.storage(f"s3://{bucket}/{p}") for p in ("a", "a2", ""))
    a.put("index/x", b"1")
    b.put("index/x", b"22")
    assert list(a.list("index")) == [("index/x", 1)]
    assert sorted(root.list("")) == [("a/index/x", 1), ("a2/index/x", 2)]
    assert a.location == f"s3://{bucket}/a"


def test_multipart_upload_round_trips_and_is_checked(s3: S3Storage) -> None:
    s3.multipart_threshold = s3.part_size = 5 << 20
    data = os.urandom((12 << 20) + 12345)
    s3.put("data/ab/big", data)
    assert s3.requests["UploadPart"] == 3 and s3.requests["CompleteMultipartUpload"] == 1
    assert s3.size("data/ab/big") == len(data)
    assert s3.get("data/ab/big") == data
    assert s3.get_range("data/ab/big", (5 << 20) - 10, 20) == data[(5 << 20) - 10:(5 << 20) + 10]
    assert s3.incomplete_uploads() == []


def test_failed_multipart_upload_is_aborted_and_invisible(s3: S3Storage, monkeypatch: pytest.MonkeyPatch) -> None:
    s3.multipart_threshold = s3.part_size = 5 << 20
    real = s3mod._md5_b64
    calls = Counter[str]()

    def bad_second_part(data: Any) -> tuple[bytes, str]:
        calls["n"] += 1
        digest, b64 = real(data)
        return (digest, real(b"damaged")[1]) if calls["n"] == 2 else (digest, b64)

    monkeypatch.setattr(s3mod, "_md5_b64", bad_second_part)
    with pytest.raises(StorageError, match="BadDigest"):
        s3.put("data/ab/big", os.urandom(11 << 20))
    assert not s3.exists("data/ab/big")
    assert s3.incomplete_uploads() == []


def test_a_body_damaged_on_the_way_is_refused(s3: S3Storage, monkeypatch: pytest.MonkeyPatch) -> None:
    real = s3mod._md5_b64
    monkeypatch.setattr(s3mod, "_md5_b64", lambda data: real(bytes(data) + b"x"))  # as if a bit flipped in transit
    with pytest.raises(StorageError) as e:
        s3.put("index/abc", b"segment bytes")
    assert "BadDigest" in str(e.value) and "index/abc" in str(e.value)
    assert not s3.exists("index/abc")


def test_listing_pages(s3: S3Storage) -> None:
    s3.page_size = 7
    names = {f"manifests/{i:03d}" for i in range(30)}
    for n in names:
        s3.put(n, b"m")
    s3.put("manifestsX/not-this", b"")
    before = s3.requests["ListObjectsV2"]
    assert {n for n, _ in s3.list("manifests")} == names
    assert s3.requests["ListObjectsV2"] - before == 5


def test_ranges_past_the_end(s3: S3Storage) -> None:
    s3.put("data/aa/x", b"0123456789")
    assert s3.get_range("data/aa/x", 10, 5) == b""
    assert s3.get_range("data/aa/x", 100, 5) == b""
    assert s3.get_range("data/aa/x", 0, 0) == b""
    with pytest.raises(ObjectNotFound):
        s3.get_range("data/aa/missing", 0, 5)


def test_racing_creates_have_one_winner_each(gateway: Gateway, s3_url: str) -> None:
    keys = [f"locks/k{i}" for i in range(12)]
    winners: Counter[str] = Counter()
    mutex = threading.Lock()
    start = threading.Barrier(8)

    def writer(w: int) -> None:
        s = gateway.storage(s3_url)  # a client of its own, as another host would have
        start.wait()
        for k in keys:
            try:
                s.create(k, f"writer {w}".encode())
            except ObjectExists:
                continue
            with mutex:
                winners[k] += 1
                winners[f"{k}={w}"] += 1

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    s = gateway.storage(s3_url)
    for k in keys:
        assert winners[k] == 1, k
        body = s.get(k).decode()
        assert winners[f"{k}={body.split()[1]}"] == 1  # the stored object is the winner's


def test_wrong_credentials_and_missing_bucket(gateway: Gateway, s3_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    with monkeypatch.context() as m:
        m.setenv("AWS_SECRET_ACCESS_KEY", "wrong")
        with pytest.raises(S3AccessDenied) as e:
            gateway.storage(s3_url).get("config")
        assert e.value.exit_code == 26 and s3_url in str(e.value) and "\n" not in str(e.value)
        m.setenv("AWS_ACCESS_KEY_ID", "nobody")
        with pytest.raises(S3AccessDenied):
            gateway.storage(s3_url).list("index").__next__()
    with pytest.raises(BucketNotFound) as e2:
        gateway.storage("s3://no-such-bucket-here/x").get("config")
    assert e2.value.exit_code == 27 and "no-such-bucket-here" in str(e2.value)


def test_unreachable_server_fails_within_the_bound(s3_url: str) -> None:
    s = S3Storage.from_location(s3_url.replace("s3://", "s3:http://127.0.0.1:9/"), max_attempts=2)
    with pytest.raises(StorageError) as e:
        s.get("config")
    assert "does not answer (gave up after 2 attempts)" in str(e.value) and "config" in str(e.value)
    assert s.request_count() == 2


def test_transient_outage_is_retried(gateway: Gateway, s3_url: str) -> None:
    """The gateway is down for about a second: the backoff outlasts it."""
    s = gateway.storage(s3_url, max_attempts=8)
    s.put("index/a", b"1")
    gateway.kill()
    timer = threading.Timer(1.0, gateway.start)
    timer.start()
    try:
        assert s.get("index/a") == b"1"
        s.put("index/b", b"2")
    finally:
        timer.join()
    assert s.request_count() > 3  # refused attempts were retried
    assert s.get("index/b") == b"2"


def test_the_client_is_botocore_alone(gateway: Gateway, s3_url: str) -> None:
    """Issue #15 item 6: the storage talks through botocore's own session; boto3 (and
    s3transfer, which it imports) is not loaded: ~0.2 s and some MiB off every start."""
    import subprocess
    import sys

    code = ("import sys\n"
            "from dedupe.storage.s3 import S3Storage\n"
            f"s = S3Storage.from_location({s3_url!r}, endpoint={gateway.endpoint!r})\n"
            "s.put('probe/x', b'1'); assert s.get('probe/x') == b'1'\n"
            "print(sorted(m for m in ('boto3', 's3transfer') if m in sys.modules))\n")
    out = subprocess.run([sys.executable, "-c", code], env={**os.environ, **gateway.env()},
                         capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
