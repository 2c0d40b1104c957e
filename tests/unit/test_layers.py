"""The import layering holds: lint-imports keeps every contract of pyproject.toml's
[tool.importlinter] (repo_format pure; storage, sources and sinks below the engine
and the LXD application layer; the command line on top)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_import_layering_contracts_are_kept() -> None:
    lint = Path(sys.executable).parent / "lint-imports"
    if not lint.exists():
        pytest.fail(f"{lint} is missing: install the test tools with scripts/setup.sh")
    done = subprocess.run([str(lint), "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"an import breaks the layering:\n{done.stdout}{done.stderr}"
