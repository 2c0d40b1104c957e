"""Progress reports from the engine to whoever shows them (the CLI's status line).

The engine never prints: it calls a ``ProgressCallback`` with a ``Progress``
snapshot now and then. ``None`` means nobody is listening.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable


@dataclass
class Progress:
    phase: str  # "backup", "restore", "check"
    name: str = ""  # what is being worked on (a group, a file, a pack)
    bytes_done: int = 0  # bytes read (backup) or written (restore) or checked
    bytes_total: int | None = None
    new_bytes: int = 0  # raw bytes of new chunks stored (backup)
    new_stored: int = 0  # their stored (compressed) size
    items: int = 0
    final: bool = False


ProgressCallback = Callable[[Progress], None]
