"""Where each object lives in a repository (FORMAT.md section 3)."""

from __future__ import annotations

from typing import Final

CONFIG: Final = "config"
DATA_DIR: Final = "data"
INDEX_DIR: Final = "index"
MANIFEST_DIR: Final = "manifests"
LOCK_DIR: Final = "locks"
KEYS_DIR: Final = "keys"
KEY_FILE: Final = "keys/repokey"
PROTECT_DIR: Final = "protect"  # made by the first protect, not by init
DIRECTORIES: Final = (DATA_DIR, INDEX_DIR, MANIFEST_DIR, LOCK_DIR, KEYS_DIR)


def pack_path(name: str) -> str:
    return f"{DATA_DIR}/{name[:2]}/{name}"


def index_path(name: str) -> str:
    return f"{INDEX_DIR}/{name}"


def manifest_path(name: str) -> str:
    return f"{MANIFEST_DIR}/{name}"


def lock_path(name: str) -> str:
    return f"{LOCK_DIR}/{name}"


def protect_path(backup_id: str) -> str:
    return f"{PROTECT_DIR}/{backup_id}"
