"""gc aborts multipart uploads a killed writer left incomplete (FORMAT.md sections
11.2 and 15.3): only under the repository's prefix, only once older than the grace
period (gc's ``tmp_max_age_s``, an hour by default; 0 in the test, since the gateway
sets the initiation time and it cannot be backdated), and the repository checks
clean afterwards."""

from __future__ import annotations

import io
import json
import os
from typing import Any

from conftest import RunCli
from s3.gateway import Gateway


def _uploads(client: Any, bucket: str) -> set[tuple[str, str]]:
    return {(u["Key"], u["UploadId"]) for u in client.list_multipart_uploads(Bucket=bucket).get("Uploads", [])}


def _abandon_upload(client: Any, bucket: str, key: str) -> tuple[str, str]:
    """What a writer killed mid-upload leaves: an upload with a part, never completed."""
    upload = client.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
    client.upload_part(Bucket=bucket, Key=key, UploadId=upload, PartNumber=1, Body=os.urandom(5 << 20))
    return key, upload


def test_gc_aborts_stale_uploads_under_its_prefix(dedupe: RunCli, gateway: Gateway, bucket: str,
                                                  s3_url: str) -> None:
    from dedupe import api
    from dedupe.maintenance.gc import GcOptions
    from dedupe.maintenance.prune import run_gc

    dedupe("init")
    data = os.urandom(3_000_000)
    bid = api.do_backup_stream(api.open_repo(s3_url), "g", io.BytesIO(data)).id
    client = gateway.client()
    ours = _abandon_upload(client, bucket, "repo/data/ab/" + "ab" * 32)
    neighbour = _abandon_upload(client, bucket, "repo2/data/cd/" + "cd" * 32)  # another repository's prefix
    assert _uploads(client, bucket) == {ours, neighbour}

    # Within the grace period (an hour by default): a running writer's upload, left alone.
    report = json.loads(dedupe("gc", "--json").stdout)
    assert report["uploads_aborted"] == 0
    assert _uploads(client, bucket) == {ours, neighbour}

    # Older than the grace: aborted, and only ours.
    assert run_gc(api.open_repo(s3_url), GcOptions(tmp_max_age_s=0)).uploads_aborted == 1
    assert _uploads(client, bucket) == {neighbour}
    assert json.loads(dedupe("check", "--json").stdout)["ok"]
    assert dedupe("restore", bid, "--stdout").stdout == data


def test_incomplete_uploads_page_through_the_listing(gateway: Gateway, bucket: str, s3_url: str) -> None:
    s3 = gateway.storage(s3_url)
    s3.page_size = 2  # uploads per listing request
    client = gateway.client()
    keys = {f"repo/data/0{i}/" + f"0{i}" * 32 for i in range(5)}
    for key in keys:
        client.create_multipart_upload(Bucket=bucket, Key=key)
    found = s3.incomplete_uploads()
    assert {"repo/" + name for name, _id, _age in found} == keys
    assert all(age >= 0 for _n, _i, age in found)
    assert s3.abort_stale_uploads(3600.0) == 0
    assert s3.abort_stale_uploads(0.0) == 5
    assert s3.incomplete_uploads() == []
