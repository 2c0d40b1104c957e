"""The errors of LXD work, with their exit codes: the client's typed errors (60-67), what
a restore into LXD refuses (60, as other LXD errors), and run-level errors (68, 69)."""

from __future__ import annotations

from dedupe.errors import DedupeError


class LXDError(DedupeError):
    """LXD answered with an error (or a request could not be made): method, path, message."""

    exit_code = 60

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(_one_line(message))
        self.status = status


class LXDUnreachable(LXDError):
    """No LXD answers at the endpoint: socket missing, connection refused, timeout."""

    exit_code = 61


class LXDPermissionDenied(LXDError):
    """The socket is not ours to open (EACCES), or LXD does not trust our certificate (403)."""

    exit_code = 62


class LXDNotFound(LXDError):
    """LXD answered 404 for the object named in the message."""

    exit_code = 63


class LXDOperationFailed(LXDError):
    """A background operation (backup, import, start, ...) ended in failure."""

    exit_code = 64


class LXDStreamBroken(LXDError):
    """A download or upload stopped before its end (connection cut, short body)."""

    exit_code = 65


class ImageFingerprintMismatch(LXDError):
    """An image's bytes do not hash (sha256) to its fingerprint."""

    exit_code = 66


class LXDUntrustedServer(LXDError):
    """The HTTPS server's certificate is not the pinned one, or does not verify."""

    exit_code = 67


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


class NothingToBackUp(LXDNotFound):
    """``backup lxd``: a name matches no instance or volume, or the selection holds no
    instance, volume, image or dump (only records); raised before anything is committed."""


# -- what a restore into LXD refuses --------------------------------------------------------

class LXDObjectExists(LXDError):
    """The target LXD already has an object of that name (and ``force`` was not given)."""


class LXDRestoreError(LXDError):
    """A restore into LXD cannot be done as asked (missing dependency, wrong pool type, ...)."""


class LXDRecoverConfirm(LXDRestoreError):
    """``--recover`` would bring back more than the named instance (LXD's recovery imports
    every unknown volume of the pool) and ``--yes`` was not given; the message lists them."""


class LXDReplaceIncomplete(LXDError):
    """A ``--force`` replacement deleted the original but could not finish (renaming the
    restored copy to the original's name, or starting it again failed); the message says
    where the restored copy is and what is left to do."""

    exit_code = 64


# -- runs and backups -----------------------------------------------------------------------

class IncompleteRun(DedupeError):
    """Some objects of an LXD run failed (the others were done)."""

    exit_code = 69

    @classmethod
    def check(cls, action: str, run: str, outcomes: list[tuple[str, str | None]]) -> None:
        """Raise when any (what, error) of a run's outcomes has an error."""
        failed = [f"{what}: {error}" for what, error in outcomes if error is not None]
        if failed:
            raise cls(
                f"LXD {action} run {run[:12]}: {len(failed)} of {len(outcomes)} objects failed: " + "; ".join(failed)
            )


class NotAnLXDBackup(DedupeError):
    """The backup was not made by ``dedupe backup lxd``."""

    exit_code = 68
