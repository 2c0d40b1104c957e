"""What ``dedupe backup lxd`` can select, as plain constants (so the command line can
describe its options without importing the LXD client)."""

from __future__ import annotations

from typing import Final

KINDS: Final = ("instances", "volumes", "images", "config", "database")
CONSISTENCY: Final = ("none", "freeze")
