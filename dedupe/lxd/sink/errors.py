"""Why a restore into LXD is refused (exit code 60, as other LXD errors)."""

from __future__ import annotations

from dedupe.lxd.api.errors import LXDError


class LXDObjectExists(LXDError):
    """The target LXD already has an object of that name (and ``force`` was not given)."""


class LXDRestoreError(LXDError):
    """A restore into LXD cannot be done as asked (missing dependency, wrong pool type, ...)."""


class LXDReplaceIncomplete(LXDError):
    """A ``--force`` replacement deleted the original but could not finish (renaming the
    restored copy to the original's name, or starting it again failed); the message says
    where the restored copy is and what is left to do."""

    exit_code = 64
