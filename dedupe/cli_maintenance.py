"""Maintenance commands: prune, forget, protect, gc, stats (being written)."""

from __future__ import annotations

import click


def register(main: click.Group, backup: click.Group) -> None:
    """Add the maintenance commands to ``main``."""
