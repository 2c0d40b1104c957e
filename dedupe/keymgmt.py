"""Key management: change the passphrase, export and import the key file.

The key file (FORMAT.md section 5.4) holds the random master secrets sealed under
the passphrase; these operations only ever rewrite that one file, atomically.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

from dedupe.errors import DedupeError
from dedupe.repository import NotARepository, Repository
from dedupe.storage import ObjectNotFound, Storage
from repo_format import config, keys, layout
from repo_format.errors import FormatError

TEST_KDF = {"t": 1, "m": 1024, "p": 1}


class NotEncrypted(DedupeError):
    exit_code = 19


def kdf_params() -> dict[str, int] | None:
    """Argon2id cost for new key files. ``DEDUPE_INSECURE_TEST_KDF=1`` makes it
    trivially cheap, for test suites only: such a key file is easy to brute-force."""
    return dict(TEST_KDF) if os.environ.get("DEDUPE_INSECURE_TEST_KDF") == "1" else None


def write_private(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` readable by its owner only (0600), atomically."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def _require_encrypted(repo: Repository) -> keys.Secrets:
    if repo.secrets is None:
        raise NotEncrypted(f"{repo.storage.location} is not encrypted: it has no key")
    return repo.secrets


def change_passphrase(repo: Repository, new_passphrase: bytes) -> None:
    secrets = _require_encrypted(repo)
    repo.storage.put(layout.KEY_FILE, keys.encode(secrets, repo.config.repo_id, new_passphrase, kdf_params()))


def export_key(repo: Repository, path: Path) -> None:
    """A copy of the key file, still protected by the passphrase."""
    _require_encrypted(repo)
    write_private(path, repo.storage.get(layout.KEY_FILE))


def import_key(storage: Storage, path: Path, passphrase: Callable[[], bytes]) -> None:
    """Put an exported key file back into a repository whose key file was lost.
    The file must open with the passphrase and belong to this repository."""
    try:
        cfg = config.decode(storage.get(layout.CONFIG), f"{storage.location}/{layout.CONFIG}")
    except ObjectNotFound:
        raise NotARepository(f"{storage.location}: not a dedupe repository (no config file)") from None
    except FormatError as e:
        raise NotARepository(f"{storage.location}: not a dedupe repository ({e})") from None
    if not cfg.encrypted:
        raise NotEncrypted(f"{storage.location} is not encrypted: it has no key")
    try:
        data = path.read_bytes()
    except OSError as e:
        raise DedupeError(f"{path}: cannot read ({e.strerror})") from None
    Repository.unlock(storage, cfg, passphrase, key_data=data)  # refuses a wrong passphrase or another repo's key
    storage.put(layout.KEY_FILE, data)
