"""Why a restore into LXD is refused (exit code 60, as other LXD errors)."""

from __future__ import annotations

from dedupe.sources.lxd.errors import LXDError


class LXDObjectExists(LXDError):
    """The target LXD already has an object of that name (and ``force`` was not given)."""


class LXDRestoreError(LXDError):
    """A restore into LXD cannot be done as asked (missing dependency, wrong pool type, ...)."""
