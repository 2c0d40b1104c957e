"""Restore from S3 reads whole packs: one ranged GET per pack of the backup (plus
the item stream's), not one per 8 MiB or per batch, and rebuilds the bytes."""

from __future__ import annotations

import io
import os

from s3.gateway import Gateway


def test_restore_reads_each_pack_with_one_get(gateway: Gateway, s3_url: str) -> None:
    from dedupe import api
    from dedupe.read import write_stream
    from repo_format import layout

    api.init(s3_url)
    data = os.urandom(40 << 20)  # incompressible: 3 packs of 16 MiB, each opened in several batches
    bid = api.do_backup_stream(api.open_repo(s3_url), "g", io.BytesIO(data)).id

    repo = api.open_repo(s3_url)
    s3 = repo.storage.inner  # behind the local cache
    packs = sum(1 for _ in s3.list(layout.DATA_DIR))
    assert packs == 3
    before = s3.requests["GetObject"]
    out = io.BytesIO()
    write_stream(repo, repo.load_manifest(bid), out, bid)
    assert out.getvalue() == data
    assert s3.requests["GetObject"] - before <= packs + 1  # and the item stream's chunk
