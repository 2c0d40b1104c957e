"""Fixtures for tests against a real S3 server (``s3.gateway``).

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
from collections.abc import Iterator
from pathlib import Path

import pytest

from s3.gateway import S3_DIR, SCRIPT, Gateway, empty_bucket, found


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "/s3/" in str(item.path):
            item.add_marker(pytest.mark.s3)


@pytest.fixture(scope="session")
def gateway() -> Gateway:
    gw = found()
    if gw is not None:
        return gw
    reason = f"no S3 gateway answers (per {S3_DIR}/env.sh)"
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason}; CI must start one: {SCRIPT} setup")
    if os.geteuid() != 0:
        pytest.skip(f"{reason}; run `sudo {SCRIPT} setup` to enable the S3 tests")
    p = subprocess.run(["bash", str(SCRIPT), "setup"], capture_output=True, text=True, timeout=900, check=False)
    gw = found()
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
