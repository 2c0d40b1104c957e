"""``dedupe ui`` and ``stats --format prometheus`` on an S3 repository (issue #19)."""

from __future__ import annotations

import io
import json
import os
import tarfile

from conftest import RunCli
from prometheus_client.parser import text_string_to_metric_families
from ui_testing import get, serve_ui


def test_ui_and_metrics_on_s3(dedupe: RunCli, s3_url: str) -> None:
    dedupe("init")
    content = os.urandom(1_200_000)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in (("etc/hostname", b"c1\n"), ("var/lib/big.bin", content)):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    out = json.loads(dedupe("backup", "tar", "lxd/default/instance/c1", "-", "--json", input=buf.getvalue()).stdout)
    names = {f.name for f in text_string_to_metric_families(dedupe("stats", "--format", "prometheus").stdout.decode())}
    assert "dedupe_repository_stored_bytes" in names
    with serve_ui(s3_url) as ui:  # type: ignore[arg-type]
        assert s3_url in get(ui.url + "/").body.decode()
        assert "lxd/default/instance/c1" in get(ui.url + "/groups").body.decode()
        assert "big.bin" in get(ui.url + f"/backup/{out['id']}/browse?path=var/lib").body.decode()
        got = get(ui.url + f"/backup/{out['id']}/file?path=var/lib/big.bin")
        assert got.status == 200 and got.body == content
