"""``dedupe ui`` and ``--metrics-file`` on a real ``backup lxd`` run (issue #19): the run
with its failed object in red, the instance browsed from the container's ``/`` two
levels down to a file whose download is the bytes in the container, and the run's
series in the metrics file."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import pytest
from dedupe_testing import RunCli

from dedupe import api
from prometheus_client.parser import text_string_to_metric_families
from ui_testing import get, serve_ui

from lxd.conftest import TREE

pytestmark = pytest.mark.lxd


def test_a_run_in_the_ui_and_the_metrics(lxd_project: Any, dedupe: RunCli, repo_path: Path, tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    p = lxd_project
    c = p.container()
    dedupe("init")
    prom = tmp_path / "dedupe.prom"
    done = dedupe("backup", "lxd", c, "--project", p.name, "--only", "instances", "--metrics-file", str(prom),
                  "--json")
    # an object of the run that failed, as `backup lxd` records it (a name that matches
    # nothing is now an error before anything is read, issue #16; real failures:
    # test_issue16.py::test_show_run_names_the_objects_that_failed)
    run = json.loads(done.stdout)
    ghost = {"group": f"lxd/{p.name}/instance/ghost", "kind": "instance", "project": p.name, "name": "ghost",
             "id": None, "error": "LXD: instance 'ghost' not found"}
    repo = api.open_repo(str(repo_path), lambda: os.environ["DEDUPE_PASSPHRASE"].encode())
    api.record_run(repo, {**run, "objects": [*run["objects"], ghost], "failed": 1})
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for f in text_string_to_metric_families(prom.read_text()) for s in f.samples}
    group = f"lxd/{p.name}/instance/{c}"
    assert any(name == "dedupe_backups" and ("group", group) in labels and value == 1
               for (name, labels), value in samples.items())

    expected = (p.rootfs(c) / TREE / "random.bin").read_bytes()
    with serve_ui(repo_path) as ui:
        runs = get(ui.url + "/runs").body.decode()
        failed = re.search(r'<tr class="failed">(.*?)</tr>', runs, re.S)
        assert failed and "ghost" in failed.group(1)
        assert group in runs and 'class="run failed"' in runs
        backup_id = re.search(r'<a href="/backup/([0-9a-f]{64})">', runs).group(1)  # type: ignore[union-attr]
        page = get(ui.url + f"/backup/{backup_id}").body.decode()
        assert "container /" in page and "snapshot snap0 /" in page and f"instance {c}" in page
        root = get(ui.url + f"/backup/{backup_id}/browse?path=backup/container/rootfs/root").body.decode()
        assert "tree/" in root
        below = get(ui.url + f"/backup/{backup_id}/browse?path=backup/container/rootfs/root/tree").body
        assert b"random.bin" in below
        # a name that is not UTF-8 is shown as its bytes and its link leads to its content
        assert b">caf\xe9</a>" in below
        odd = get(ui.url + f"/backup/{backup_id}/file?path=backup/container/rootfs/root/tree/caf%E9")
        assert odd.status == 200 and odd.body == b"latin-1 name\n"
        got = get(ui.url + f"/backup/{backup_id}/file?path=backup/container/rootfs/root/tree/random.bin")
        assert got.status == 200 and got.body == expected
