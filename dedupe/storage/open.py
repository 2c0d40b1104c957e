"""From a ``--repo`` value to a storage."""

from __future__ import annotations

from pathlib import Path

from dedupe.storage.base import Storage
from dedupe.storage.local import LocalStorage


def open_storage(location: str) -> Storage:
    """The storage behind a ``--repo`` value: a local directory path."""
    return LocalStorage(Path(location))
