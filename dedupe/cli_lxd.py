"""The LXD commands: ``backup lxd`` and ``restore --to-lxd`` (being written)."""

from __future__ import annotations

from typing import Any

import click


def register(main: click.Group, backup: click.Group) -> None:
    """Add ``backup lxd`` to the ``backup`` group."""


def restore_to_lxd(c: Any, repo: Any, **kw: Any) -> None:
    raise click.UsageError("--to-lxd is not available yet")
