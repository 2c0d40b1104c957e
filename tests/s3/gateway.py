"""The S3 gateway the tests use: a single-node Ceph RADOS Gateway started by
``scripts/s3-test-server.sh``: how to reach, stop and start it."""

from __future__ import annotations

import os
import subprocess
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from dedupe.storage.s3 import S3Storage, parse_location
from dedupe_testing import require_root

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "s3-test-server.sh"
S3_DIR = Path(os.environ.get("S3_DIR", "/var/tmp/dedupe-s3"))


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
    require_root("stopping and starting the gateway")
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


def found() -> Gateway | None:
    env = _read_env()
    if env.get("S3_ENDPOINT") and _answers(env["S3_ENDPOINT"]):
        return Gateway(env["S3_ENDPOINT"], env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"])
    return None



def empty_bucket(client: Any, bucket: str) -> None:
    for up in client.list_multipart_uploads(Bucket=bucket).get("Uploads", []):
        client.abort_multipart_upload(Bucket=bucket, Key=up["Key"], UploadId=up["UploadId"])
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        keys = [{"Key": o["Key"]} for o in page.get("Contents", [])]
        if keys:
            client.delete_objects(Bucket=bucket, Delete={"Objects": keys, "Quiet": True})


def ensure_user(uid: str, access_key: str, secret_key: str) -> Gateway:
    """A second user of the gateway (made with radosgw-admin once), as a Gateway whose
    credentials are that user's: a backup host of a shared bucket."""
    gw = found()
    assert gw is not None
    conf = S3_DIR / "ceph.conf"
    info = subprocess.run(["radosgw-admin", "-c", str(conf), "user", "info", f"--uid={uid}"],
                          capture_output=True, text=True, timeout=120, check=False)
    if info.returncode != 0:
        require_root("radosgw-admin user create")
        subprocess.run(["radosgw-admin", "-c", str(conf), "user", "create", f"--uid={uid}",
                        f"--display-name={uid}", f"--access-key={access_key}", f"--secret-key={secret_key}"],
                       capture_output=True, text=True, timeout=120, check=True)
    return Gateway(gw.endpoint, access_key, secret_key)
