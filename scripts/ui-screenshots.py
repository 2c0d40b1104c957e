"""Take the README's screenshots of `dedupe ui` (docs/screenshots/*.png): build the
demo repository of benchmarks/ui_repo.py (6 instances, 14 nights), serve it, and
photograph the main pages with Debian's chromium through Playwright.

    .venv/bin/python scripts/ui-screenshots.py [OUT_DIR]
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]


def main() -> None:
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "docs" / "screenshots"
    out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="dedupe-shots-"))
    env = {**os.environ, "XDG_CACHE_HOME": str(work / "cache"), "DEDUPE_PASSPHRASE": "demo",
           "DEDUPE_INSECURE_TEST_KDF": "1", "DEDUPE_REPO": str(work / "repo")}
    subprocess.run([sys.executable, str(ROOT / "benchmarks" / "ui_repo.py"), str(work / "repo")], env=env, check=True)
    ui = subprocess.Popen([sys.executable, "-m", "dedupe", "ui", "--listen", "127.0.0.1:8766"], env=env)
    try:
        for _ in range(100):
            try:
                urllib.request.urlopen("http://127.0.0.1:8766/favicon.ico", timeout=2)
                break
            except OSError:
                time.sleep(0.2)
        time.sleep(3)  # let the background stats finish on this small repository
        from playwright.sync_api import sync_playwright
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            base = "http://127.0.0.1:8766"
            page.goto(base + "/")
            page.wait_for_selector("body[data-charts='2']")
            page.screenshot(path=str(out / "overview.png"))
            page.goto(base + "/groups")
            page.screenshot(path=str(out / "groups.png"))
            page.goto(base + "/runs")
            page.screenshot(path=str(out / "runs.png"))
            page.goto(base + "/group?name=lxd%2Fdefault%2Finstance%2Fweb2")
            page.click("#backups tbody tr >> nth=0 >> td.id a")
            page.click("#files >> text=etc/")
            page.set_viewport_size({"width": 1280, "height": 1100})
            page.screenshot(path=str(out / "backup.png"))
            browser.close()
    finally:
        ui.terminate()
        ui.wait()
        shutil.rmtree(work, ignore_errors=True)
    for png in sorted(out.glob("*.png")):
        print(f"{png} {png.stat().st_size // 1024} KiB")


if __name__ == "__main__":
    main()
