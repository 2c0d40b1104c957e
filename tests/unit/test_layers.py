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


def _loaded_after(steps: str, roots: tuple[str, ...], modules: tuple[str, ...]) -> str:
    """Run ``steps`` (Python with the CLI's ``main`` and click's ``CliRunner`` at hand) in a
    fresh interpreter; return the loaded modules that are under ``roots``, in ``modules``
    or part of the LXD source, sink or application layer."""
    probe = ("import sys\n"
             "from click.testing import CliRunner\n"
             "from dedupe.cli import main\n"
             + steps
             + f"roots, modules = {roots!r}, {modules!r}\n"
             "print(' '.join(sorted(m for m in sys.modules if m.split('.')[0] in roots or m in modules\n"
             "                      or m.startswith(('dedupe.lxd.api', 'dedupe.lxd.source', 'dedupe.lxd.sink',\n"
             "                                    'dedupe.lxd.backup', 'dedupe.lxd.restore', 'dedupe.lxd.recover',\n"
             "                                    'dedupe.lxd.stored', 'dedupe.lxd.errors')))))\n")
    done = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_cli_starts_without_the_modules_it_may_not_need() -> None:
    """``dedupe --help`` (and so every command's start) loads neither the LXD source and
    sink nor pylxd/requests/boto3, nor gc, prune, stats, copy, the restore and browsing
    engines, the S3 storage, numpy, cryptography (only keys need it), socket, subprocess
    or secrets (with hmac and OpenSSL's hashes; os.urandom serves): each comes in only
    when a command that uses it runs (start-up is part of every backup's time)."""
    loaded = _loaded_after(
        "assert CliRunner().invoke(main, ['--help']).exit_code == 0\n",
        ("pylxd", "requests", "boto3", "numpy", "cryptography", "socket", "subprocess", "secrets", "hmac", "_hashlib",
         "starlette", "uvicorn", "jinja2", "prometheus_client"),
        ("dedupe.maintenance.gc", "dedupe.maintenance.stats", "dedupe.read", "dedupe.restore.browse",
         "dedupe.maintenance.check", "dedupe.restore.tree", "dedupe.copy", "dedupe.maintenance.prune",
         "dedupe.storage.s3", "dedupe.ui", "dedupe.metrics", "dedupe.records"))
    assert loaded == "", f"loaded at start: {loaded}"


def test_a_tar_backup_runs_without_the_modules_it_does_not_need(tmp_path: Path) -> None:
    """A first tar backup into a local repository (the nightly job's hot path) loads no
    LXD, S3, prune, gc, restore, numpy or secrets module either, nor the web UI's stack
    (starlette, uvicorn, jinja2) or the metrics (without --metrics-file). It does load
    dedupe.records: the config this machine saw and the seen-backups record are local
    records, which always lived there (the storage cache module held them before)."""
    import io
    import tarfile
    archive = tmp_path / "small.tar"
    with tarfile.open(archive, "w") as tar:
        info = tarfile.TarInfo("etc/hostname")
        info.size = 5
        tar.addfile(info, io.BytesIO(b"host\n"))
    repo = str(tmp_path / "repo")
    loaded = _loaded_after(
        f"assert CliRunner().invoke(main, ['--repo', {repo!r}, 'init', '--encryption', 'none']).exit_code == 0\n"
        f"done = CliRunner().invoke(main, ['--repo', {repo!r}, 'backup', 'tar', 'g', {str(archive)!r}])\n"
        "assert done.exit_code == 0, done.output\n",
        ("pylxd", "requests", "boto3", "numpy", "secrets", "hmac", "starlette", "uvicorn", "jinja2"),
        ("dedupe.maintenance.gc", "dedupe.maintenance.prune", "dedupe.read", "dedupe.storage.s3", "dedupe.ui",
         "dedupe.metrics"))
    assert loaded == "", f"loaded by a tar backup: {loaded}"
