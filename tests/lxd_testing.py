"""Helpers of the tests against a real LXD daemon (tests/lxd): ``dedupe backup lxd`` and
``dedupe restore --to-lxd`` through the CLI, their JSON read back."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from dedupe_testing import RunCli


def backup(dedupe: RunCli, *args: str, via: str | None = None, repo: Path | None = None) -> dict[str, Any]:
    """``dedupe backup lxd ARGS [--via VIA] --json``, which must not fail; each object by group."""
    kw = {"repo": repo} if repo is not None else {}
    out = json.loads(dedupe("backup", "lxd", *args, *(["--via", via] if via else []), "--json", **kw).stdout)
    assert out["failed"] == 0, out
    out["by_group"] = {o["group"]: o for o in out["objects"]}
    return out


def restore(dedupe: RunCli, *args: str, check: bool = True) -> Any:
    """``dedupe restore ARGS --to-lxd --json``: the restored objects (with ``check=False``,
    the finished process)."""
    p = dedupe("restore", *args, "--to-lxd", "--json", check=check)
    return json.loads(p.stdout)["restored"] if check else p
