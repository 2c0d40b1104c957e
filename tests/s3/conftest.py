"""Fixtures for tests against a real S3 server: a single-node Ceph RADOS Gateway
started by ``scripts/s3-test-server.sh``.

``gateway``: the running gateway; when none answers, CI (CI=true) fails, a local
non-root run skips, and a local root run starts one with the script (once).
``bucket``: a fresh bucket, emptied and removed afterwards. ``s3_url``: a repository
location in it. Every test runs with the gateway's credentials and endpoint in the
environment (so the CLI in a subprocess sees them too), its own cache directory and
a small retry bound.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from dedupe.storage.s3 import S3Storage, parse_location

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "s3-test-server.sh"
S3_DIR = Path(os.environ.get("S3_DIR", "/var/tmp/dedupe-s3"))

pytestmark = pytest.mark.s3


@dataclass
class Gateway:
    endpoint: str
    access_key: str
    secret_key: str

    def env(self) -> dict[str, str]:
        return {"AWS_ACCESS_KEY_ID": self.access_key, "AWS_SECRET_ACCESS_KEY": self.secret_key,
                "AWS_DEFAULT_REGION": "us-east-1", "DEDUPE_S3_ENDPOINT": self.endpoint}

    def client(self) -> Any:
        import boto3
        from botocore.config import Config
        return boto3.client("s3", endpoint_url=self.endpoint, aws_access_key_id=self.access_key,
                            aws_secret_access_key=self.secret_key, region_name="us-east-1",
                            config=Config(s3={"addressing_style": "path"},
                                          request_checksum_calculation="when_required",
                                          response_checksum_validation="when_required"))

    def storage(self, url: str, **kw: Any) -> S3Storage:
        return S3Storage(parse_location(url), endpoint=self.endpoint, **kw)

    def answers(self) -> bool:
        return _answers(self.endpoint)

    def kill(self) -> None:
        """SIGKILL the gateway process (the cluster behind it stays up)."""
        _script("kill-rgw")
        assert not self.answers()

    def start(self) -> None:
        _script("start-rgw")
        assert self.answers()


def _script(cmd: str) -> None:
    if os.geteuid() != 0:
        pytest.skip("stopping and starting the gateway needs root")
    p = subprocess.run(["bash", str(SCRIPT), cmd], capture_output=True, text=True, timeout=120, check=False)
    if p.returncode != 0:
        pytest.fail(f"{SCRIPT} {cmd} failed: {p.stdout}{p.stderr}")


def _answers(endpoint: str) -> bool:
    try:
        with urllib.request.urlopen(endpoint + "/", timeout=2):
            return True
    except urllib.error.HTTPError:
        return True  # an answer, if not a welcome one
    except OSError:
        return False


def _read_env() -> dict[str, str]:
    env: dict[str, str] = {}
    try:
        text = (S3_DIR / "env.sh").read_text()
    except OSError:
        return env
    for line in text.splitlines():
        if line.startswith("export ") and "=" in line:
            k, _, v = line[len("export "):].partition("=")
            env[k.strip()] = v.strip()
    return env


def _found() -> Gateway | None:
    env = _read_env()
    if env.get("S3_ENDPOINT") and _answers(env["S3_ENDPOINT"]):
        return Gateway(env["S3_ENDPOINT"], env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"])
    return None


@pytest.fixture(scope="session")
def gateway() -> Gateway:
    gw = _found()
    if gw is not None:
        return gw
    reason = f"no S3 gateway answers (per {S3_DIR}/env.sh)"
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason}; CI must start one: {SCRIPT} setup")
    if os.geteuid() != 0:
        pytest.skip(f"{reason}; run `sudo {SCRIPT} setup` to enable the S3 tests")
    p = subprocess.run(["bash", str(SCRIPT), "setup"], capture_output=True, text=True, timeout=900, check=False)
    gw = _found()
    if p.returncode != 0 or gw is None:
        pytest.fail(f"{reason}; {SCRIPT} setup failed:\n{(p.stdout + p.stderr)[-2000:]}")
    return gw


@pytest.fixture(autouse=True)
def s3_env(gateway: Gateway, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Gateway]:
    """The gateway's settings in the environment, a private cache, a quick retry bound;
    a gateway a test stopped is started again afterwards."""
    for k, v in gateway.env().items():
        monkeypatch.setenv(k, v)
    for k in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "DEDUPE_NO_CACHE"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("DEDUPE_S3_MAX_ATTEMPTS", "3")
    yield gateway
    if not gateway.answers():
        gateway.start()


def empty_bucket(client: Any, bucket: str) -> None:
    for up in client.list_multipart_uploads(Bucket=bucket).get("Uploads", []):
        client.abort_multipart_upload(Bucket=bucket, Key=up["Key"], UploadId=up["UploadId"])
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        keys = [{"Key": o["Key"]} for o in page.get("Contents", [])]
        if keys:
            client.delete_objects(Bucket=bucket, Delete={"Objects": keys, "Quiet": True})


@pytest.fixture
def bucket(gateway: Gateway) -> Iterator[str]:
    name = f"dt-{secrets.token_hex(6)}"
    client = gateway.client()
    client.create_bucket(Bucket=name)
    yield name
    if not gateway.answers():
        gateway.start()
    empty_bucket(client, name)
    client.delete_bucket(Bucket=name)


@pytest.fixture
def s3_url(bucket: str) -> str:
    return f"s3://{bucket}/repo"


@pytest.fixture
def repo_path(s3_url: str) -> str:
    """The top-level ``dedupe`` fixture runs the CLI against this repository."""
    return s3_url
