"""The web UI in a real browser (issue #19.3): the overview draws its charts, a group's
page lists its backups, the file browser reaches a file two levels down and its
download is the original bytes, a stale series is highlighted, and a non-loopback
listen refuses a browser without the token."""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path
from typing import Any

from dedupe_testing import RunCli
from ui_testing import free_port, serve_ui


def follow(page: Any, selector: str) -> None:
    """Click a link and wait until the page it leads to has loaded: a click returns once the
    navigation commits, before the new page's DOM is there, so a query straight after could
    read nothing (CI saw a group page with 0 rows) or the old page's element of the same id."""
    with page.expect_navigation(wait_until="load"):
        page.click(selector)


def test_overview_group_browser_and_download(dedupe: RunCli, repo_path: Path, tmp_path: Path, page: Any) -> None:
    tree = tmp_path / "tree"
    (tree / "top" / "sub").mkdir(parents=True)
    content = os.urandom(300_000)
    (tree / "top" / "sub" / "deep.bin").write_bytes(content)
    (tree / "top" / "readme.txt").write_text("hello\n")
    dedupe("init")
    dedupe("backup", "dir", "host/files", str(tree))
    (tree / "top" / "new.txt").write_text("new\n")
    dedupe("backup", "dir", "host/files", str(tree))
    dedupe("backup", "stream", "db/global", "-", input=os.urandom(100_000))
    dedupe("check")
    with serve_ui(repo_path) as ui:
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(ui.url + "/")
        page.wait_for_selector("body[data-charts='2']")
        # each chart drew something: its canvas is not blank
        for canvas in ("chart-nightly", "chart-groups"):
            drawn = page.evaluate(
                "(id) => { const c = document.getElementById(id); const d = c.getContext('2d')"
                ".getImageData(0, 0, c.width, c.height).data; let n = 0;"
                " for (let i = 3; i < d.length; i += 4) if (d[i]) n++; return n; }", canvas)
            assert drawn > 1000, f"{canvas} looks blank ({drawn} pixels)"
        assert page.inner_text("#backups") == "3"
        assert "OK" in page.inner_text("#last-check")
        assert errors == []

        # Groups -> a group's page lists its backups
        follow(page, "nav >> text=Groups")
        follow(page, "#groups >> text=host/files")
        rows = page.locator("#backups tbody tr")
        assert rows.count() == 2
        ids = [b["id"] for b in json.loads(dedupe("list", "--json").stdout) if b["group"] == "host/files"]
        assert ids[-1][:12] in rows.nth(0).inner_text()  # newest first

        # the browser: two levels down, then download
        follow(page, "#backups tbody tr:nth-child(1) td.id a")
        follow(page, "#files >> text=top/")
        assert "readme.txt" in page.inner_text("#files")
        follow(page, "#files >> text=sub/")
        assert re.search(r"/\s*top\s*/\s*sub", page.inner_text("#crumbs"))
        with page.expect_download() as download:
            page.click("#files >> text=deep.bin")
        saved = tmp_path / "downloaded.bin"
        download.value.save_as(saved)
        assert saved.read_bytes() == content

        # the diff against the previous backup
        page.goto(ui.url + f"/backup/{ids[-1]}")
        follow(page, "#diff-link")
        assert "top/new.txt" in page.inner_text("#changes")


def test_a_stale_series_is_highlighted(dedupe: RunCli, repo_path: Path, page: Any) -> None:
    dedupe("init")
    dedupe("backup", "stream", "old/group", "-", input=b"old" * 100)
    old_at = time.time()
    time.sleep(12)
    dedupe("backup", "stream", "fresh/group", "-", input=b"fresh" * 100)
    # stale: older than the old backup's age less 6 s (the fresh one stays younger for 6 s more)
    hours = (time.time() - old_at - 6) / 3600
    with serve_ui(repo_path, "--stale-hours", f"{hours:.6f}") as ui:
        page.goto(ui.url + "/")
        assert "1 behind" in page.inner_text("#stale") and "old/group" in page.inner_text("#stale")
        page.goto(ui.url + "/groups")
        assert page.locator("tr.stale[data-group='old/group']").count() == 1
        assert page.locator("tr[data-group='fresh/group']").get_attribute("class") in ("", None)
        color = page.eval_on_selector("tr.stale[data-group='old/group'] td.age", "e => getComputedStyle(e).color")
        assert color == "rgb(198, 40, 40)"


def test_non_loopback_without_the_token_is_refused(dedupe: RunCli, repo_path: Path, page: Any) -> None:
    dedupe("init")
    dedupe("backup", "stream", "db/global", "-", input=b"x" * 100)
    port = free_port()
    with serve_ui(repo_path, listen=f"0.0.0.0:{port}", wait_path="/favicon.ico") as ui:
        token = re.search(r"\?token=(\S+)", ui.first_line).group(1)  # type: ignore[union-attr]
        refused = page.goto(ui.url + "/groups")
        assert refused.status == 401
        assert "token is needed" in page.inner_text("body")
        page.goto(ui.url + f"/?token={token}")
        assert page.url == ui.url + "/"  # the token left the address bar for a cookie
        follow(page, "nav >> text=Groups")
        assert "db/global" in page.inner_text("#groups")
