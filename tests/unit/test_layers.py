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


def test_cli_starts_without_the_modules_it_may_not_need() -> None:
    """``dedupe --help`` (and so every command's start) loads neither the LXD source and
    sink nor pylxd/requests/boto3, nor gc, prune, stats, copy, the restore and browsing
    engines, the S3 storage, numpy, cryptography (only keys need it), socket, subprocess
    or secrets (with hmac and OpenSSL's hashes; os.urandom serves): each comes in only
    when a command that uses it runs (start-up is part of every backup's time)."""
    probe = ("import sys\n"
             "from click.testing import CliRunner\n"
             "from dedupe.cli import main\n"
             "assert CliRunner().invoke(main, ['--help']).exit_code == 0\n"
             "print(' '.join(sorted(m for m in sys.modules if m.split('.')[0] in ('pylxd', 'requests', 'boto3', 'numpy',\n"
             "                                                                     'cryptography', 'socket', 'subprocess',\n"
             "                                                                     'secrets', 'hmac', '_hashlib')\n"
             "                      or m.startswith(('dedupe.sources.lxd', 'dedupe.sinks.lxd', 'dedupe.lxd.'))\n"
             "                      or m in ('dedupe.gc', 'dedupe.stats', 'dedupe.restore', 'dedupe.browse',\n"
             "                               'dedupe.check', 'dedupe.restore_tree', 'dedupe.copy', 'dedupe.prune',\n"
             "                               'dedupe.storage.s3'))))\n")
    done = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "", f"loaded at start: {done.stdout.strip()}"


def test_a_tar_backup_runs_without_the_modules_it_does_not_need(tmp_path: Path) -> None:
    """A first tar backup into a local repository (the nightly job's hot path) loads no
    LXD, S3, prune, gc, restore, numpy or secrets module either."""
    import io
    import tarfile
    archive = tmp_path / "small.tar"
    with tarfile.open(archive, "w") as tar:
        info = tarfile.TarInfo("etc/hostname")
        info.size = 5
        tar.addfile(info, io.BytesIO(b"host\n"))
    probe = ("import sys\n"
             "from click.testing import CliRunner\n"
             "from dedupe.cli import main\n"
             f"repo = {str(tmp_path / 'repo')!r}\n"
             "assert CliRunner().invoke(main, ['--repo', repo, 'init', '--encryption', 'none']).exit_code == 0\n"
             f"done = CliRunner().invoke(main, ['--repo', repo, 'backup', 'tar', 'g', {str(archive)!r}])\n"
             "assert done.exit_code == 0, done.output\n"
             "print(' '.join(sorted(m for m in sys.modules if m.split('.')[0] in ('pylxd', 'requests', 'boto3', 'numpy',\n"
             "                                                                     'secrets', 'hmac')\n"
             "                      or m.startswith(('dedupe.sources.lxd', 'dedupe.sinks.lxd', 'dedupe.lxd.'))\n"
             "                      or m in ('dedupe.gc', 'dedupe.prune', 'dedupe.restore', 'dedupe.storage.s3'))))\n")
    done = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "", f"loaded by a tar backup: {done.stdout.strip()}"
