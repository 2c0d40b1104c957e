"""The typed errors of the LXD client, each with its exit code (60-67)."""

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
