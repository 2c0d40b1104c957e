"""LXD as a source (and restore target): ``client`` is the only module that talks to it."""

from dedupe.sources.lxd.client import (
    ExportStream,
    ImageExport,
    ImageFingerprintMismatch,
    ImagePart,
    LXDClient,
    LXDError,
    LXDNotFound,
    LXDOperationFailed,
    LXDPermissionDenied,
    LXDStreamBroken,
    LXDUnreachable,
    LXDUntrustedServer,
    StaleBackup,
    find_socket,
    strip_read_only,
)

__all__ = [
    "ExportStream",
    "ImageExport",
    "ImageFingerprintMismatch",
    "ImagePart",
    "LXDClient",
    "LXDError",
    "LXDNotFound",
    "LXDOperationFailed",
    "LXDPermissionDenied",
    "LXDStreamBroken",
    "LXDUnreachable",
    "LXDUntrustedServer",
    "StaleBackup",
    "find_socket",
    "strip_read_only",
]
