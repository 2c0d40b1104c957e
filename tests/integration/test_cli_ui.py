"""``dedupe ui`` over HTTP, as a real process (issue #19.1): the token rule, loopback's
Host check, pages, downloads, new backups seen without a restart, /metrics. The same
pages in a real browser: tests/browser/."""

from __future__ import annotations

import io
import json
import os
import re
import tarfile
import time
from pathlib import Path

import pytest
from dedupe_testing import TEST_PASSPHRASE, RunCli, assert_clean_error
from prometheus_client.parser import text_string_to_metric_families
from ui_testing import free_port, get, serve_ui, wait_for


@pytest.fixture(autouse=True)
def own_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


def lxd_like_tar(content: bytes) -> bytes:
    """A tar laid out as LXD's instance export (container and one snapshot)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name in ("backup", "backup/snapshots", "backup/snapshots/snap0", "backup/snapshots/snap0/rootfs",
                     "backup/container", "backup/container/rootfs", "backup/container/rootfs/etc"):
            d = tarfile.TarInfo(name)
            d.type, d.mode = tarfile.DIRTYPE, 0o755
            tar.addfile(d)
        for name, data in (("backup/index.yaml", b"name: c1\n"), ("backup/container/rootfs/etc/hostname", b"c1\n"),
                           ("backup/container/rootfs/etc/big.bin", content),
                           ("backup/snapshots/snap0/rootfs/old.txt", b"old\n")):
            f = tarfile.TarInfo(name)
            f.size = len(data)
            tar.addfile(f, io.BytesIO(data))
    return buf.getvalue()


def backup_ids(dedupe: RunCli) -> list[str]:
    return [b["id"] for b in json.loads(dedupe("list", "--json").stdout)]


def test_pages_download_and_new_backups_without_restart(dedupe: RunCli, repo_path: Path) -> None:
    dedupe("init")
    content = os.urandom(700_000)
    dedupe("backup", "tar", "lxd/default/instance/c1", "-", input=lxd_like_tar(content))
    dedupe("backup", "stream", "db/global", "-", input=b"dump\n" * 1000)
    dedupe("check")
    tar_id = backup_ids(dedupe)[0]
    with serve_ui(repo_path) as ui:
        assert "read-only" in ui.first_line and ui.url in ui.first_line and "token" not in ui.first_line
        overview = get(ui.url + "/")
        assert overview.status == 200
        text = overview.body.decode()
        assert "Last check" in text and "structure" in text and "OK" in text
        assert "chart-nightly" in text and "/static/chart.umd.min.js" in text
        assert TEST_PASSPHRASE not in text
        assert "script-src 'self'" in overview.headers["content-security-policy"]
        assert get(ui.url + "/static/chart.umd.min.js").body.startswith(b"/*!\n * Chart.js v4")

        groups = get(ui.url + "/groups").body.decode()
        assert "lxd/default/instance/c1" in groups and "db/global" in groups

        page = get(ui.url + f"/backup/{tar_id[:12]}").body.decode()
        assert "container /" in page and "snapshot snap0 /" in page  # LXD roots
        assert "hostname" not in page or "etc/" in page
        listing = get(ui.url + f"/backup/{tar_id}/browse?path=backup/container/rootfs/etc").body.decode()
        assert "big.bin" in listing and "hostname" in listing
        got = get(ui.url + f"/backup/{tar_id}/file?path=backup/container/rootfs/etc/big.bin")
        assert got.status == 200 and got.body == content
        assert "attachment" in got.headers["content-disposition"]
        assert get(ui.url + f"/backup/{tar_id}/file?path=backup/container/rootfs/nope").status == 404
        assert get(ui.url + "/backup/ffffffffffff").status == 404

        # a new backup shows up without a restart, and its diff against the previous one
        dedupe("backup", "tar", "lxd/default/instance/c1", "-", input=lxd_like_tar(content[:500_000]))
        new_id = backup_ids(dedupe)[-1]
        wait_for(lambda: new_id[:12] in get(ui.url + "/group?name=lxd%2Fdefault%2Finstance%2Fc1").body.decode(),
                 what="the new backup on the group page")
        diff = get(ui.url + f"/backup/{new_id}/diff").body.decode()
        assert "backup/container/rootfs/etc/big.bin" in diff and "content" in diff

        # /metrics: the same exposition as stats --format prometheus, once stats are computed
        wait_for(lambda: get(ui.url + "/metrics").status == 200, what="/metrics")
        names = {f.name for f in text_string_to_metric_families(get(ui.url + "/metrics").body.decode())}
        assert "dedupe_repository_stored_bytes" in names and "dedupe_check_last_success" in names


def test_a_stream_backup_has_no_browser_in_a_plaintext_repository(dedupe: RunCli, repo_path: Path) -> None:
    dedupe("init", "--encryption", "none")
    dedupe("backup", "stream", "db/global", "-", input=b"x" * 100)
    with serve_ui(repo_path) as ui:
        page = get(ui.url + f"/backup/{backup_ids(dedupe)[0]}").body.decode()
        assert "one byte stream" in page and "encrypted" not in page
        assert get(ui.url + f"/backup/{backup_ids(dedupe)[0]}/browse?path=").status == 404


def test_non_loopback_needs_the_token(dedupe: RunCli, repo_path: Path) -> None:
    dedupe("init")
    port = free_port()
    with serve_ui(repo_path, listen=f"0.0.0.0:{port}", wait_path="/favicon.ico") as ui:
        printed = re.search(r"\?token=(\S+)", ui.first_line)
        assert printed, f"no generated token printed: {ui.first_line!r}"
        token = printed.group(1)
        assert len(token) >= 16
        assert get(ui.url + "/").status == 401
        assert get(ui.url + "/static/dedupe.css").status == 401
        assert get(ui.url + "/?token=wrong-token-of-some-length").status == 401
        assert get(ui.url + "/", {"authorization": "Bearer nope"}).status == 401
        assert get(ui.url + "/", {"authorization": f"Bearer {token}"}).status == 200
        first = get(ui.url + f"/groups?token={token}")
        assert first.status == 303 and first.headers["location"] == "/groups"
        cookie = first.headers["set-cookie"].split(";")[0]
        assert "HttpOnly" in first.headers["set-cookie"]
        assert get(ui.url + "/groups", {"cookie": cookie}).status == 200


def test_a_given_token_is_required_on_loopback_too(dedupe: RunCli, repo_path: Path) -> None:
    dedupe("init")
    token = "a-token-of-twenty-chars"
    with serve_ui(repo_path, "--token", token, token=token) as ui:
        assert "token=" in ui.first_line
        assert get(ui.url + "/").status == 401
        assert get(ui.url + "/", {"authorization": f"Bearer {token}"}).status == 200
    p = dedupe("ui", "--listen", "0.0.0.0:1", "--token", "short", check=False)
    assert p.returncode == 2 and "at least 16" in p.stderr.decode()
    p = dedupe("ui", "--listen", "nonsense", check=False)
    assert p.returncode == 2 and "--listen" in p.stderr.decode()
    with serve_ui(repo_path) as ui:  # the port taken: one line, exit 2
        taken = ui.url.removeprefix("http://")
        assert_clean_error(dedupe("ui", "--listen", taken, check=False), 2, taken, "cannot listen")


def test_loopback_refuses_other_host_names(dedupe: RunCli, repo_path: Path) -> None:
    """DNS rebinding: a page elsewhere that points its own name at 127.0.0.1 gets nothing."""
    dedupe("init")
    with serve_ui(repo_path) as ui:
        assert get(ui.url + "/", {"host": "evil.example:8765"}).status == 403
        assert get(ui.url + "/", {"host": "localhost"}).status == 200


def test_ui_start_is_quick_on_a_small_repository(dedupe: RunCli, repo_path: Path) -> None:
    dedupe("init")
    started = time.monotonic()
    with serve_ui(repo_path) as ui:
        assert get(ui.url + "/").status == 200
    assert time.monotonic() - started < 30


def test_runs_page_shows_failed_objects_in_red(repo_path: Path) -> None:
    """Nights of LXD runs as benchmarks/ui_repo.py makes them (an object failed on the
    last two of four nights; a failure is only in this machine's records)."""
    import subprocess
    import sys
    root = Path(__file__).resolve().parents[2]
    subprocess.run([sys.executable, str(root / "benchmarks" / "ui_repo.py"), str(repo_path), "--instances", "3",
                    "--nights", "4"], check=True, capture_output=True)
    with serve_ui(repo_path) as ui:
        runs = get(ui.url + "/runs").body.decode()
        assert runs.count('class="run "') == 2 and runs.count('class="run failed"') == 2  # nights 3 and 4
        failed_row = re.search(r'<tr class="failed">(.*?)</tr>', runs, re.S)
        assert failed_row and "lxd/default/instance/" in failed_row.group(1) and "export failed" in failed_row.group(1)
        groups = get(ui.url + "/groups").body.decode()
        assert "keeps" in groups and "daily 7" in groups  # the recorded prune policy
        assert groups.count('class="stale"') == 1  # the first instance stopped three nights ago


def test_forget_gc_and_a_damaged_manifest_while_serving(dedupe: RunCli, repo_path: Path) -> None:
    """gc moves and deletes packs under a running UI: it takes the new index and serves
    the remaining backup's files; a manifest that does not load is named, not fatal."""
    dedupe("init")
    first, second = os.urandom(600_000), os.urandom(600_000)
    dedupe("backup", "tar", "g", "-", input=lxd_like_tar(first))
    dedupe("backup", "tar", "g", "-", input=lxd_like_tar(second))
    old, new = backup_ids(dedupe)
    with serve_ui(repo_path) as ui:
        path = "/file?path=backup/container/rootfs/etc/big.bin"
        assert get(ui.url + f"/backup/{new}{path}").body == second
        dedupe("forget", old)
        dedupe("gc", "--max-unused", "0%")
        wait_for(lambda: old[:12] not in get(ui.url + "/group?name=g").body.decode(), what="the forgotten backup gone")
        got = get(ui.url + f"/backup/{new}{path}")
        assert got.status == 200 and got.body == second
    manifest = next(p for p in (repo_path / "manifests").rglob(new + "*"))
    manifest.write_bytes(manifest.read_bytes()[:-20])
    with serve_ui(repo_path) as ui:
        overview = get(ui.url + "/").body.decode()
        assert "1 backup(s) could not be read" in overview and new[:12] in overview
        assert get(ui.url + "/groups").status == 200
