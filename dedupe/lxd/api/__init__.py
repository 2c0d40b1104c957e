"""LXD as a source (and restore target): the only package that talks to LXD.

``client.LXDClient`` gathers the calls: mixins by what they touch (``listings``,
``backups``, ``imports``, ``images``, ``config_writes``, ``lifecycle``, ``database``)
over ``transport`` (requests, errors, operations); ``connect`` reaches the server;
``streams``, ``multipart`` and ``uploads`` move bytes; ``errors`` are the typed errors;
``records`` the read-only fields. ``plan`` decides what a backup run reads and
``objects`` opens each object as a stream.
"""

from dedupe.lxd.api.backups import StaleBackup
from dedupe.lxd.api.client import LXDClient
from dedupe.lxd.api.connect import find_socket
from dedupe.lxd.errors import (
    ImageFingerprintMismatch,
    LXDError,
    LXDNotFound,
    LXDOperationFailed,
    LXDPermissionDenied,
    LXDStreamBroken,
    LXDUnreachable,
    LXDUntrustedServer,
)
from dedupe.lxd.api.records import strip_read_only
from dedupe.lxd.api.streams import ExportStream, ImageExport, ImagePart

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
