"""LXD's REST API: the only package that talks to LXD (pylxd, requests, urllib3).

``client.LXDClient`` gathers the calls: mixins by what they touch (``listings``,
``backups``, ``imports``, ``images``, ``config_writes``, ``lifecycle``, ``database``)
over ``transport`` (requests, errors, operations); ``connect`` reaches the server;
``streams``, ``multipart`` and ``uploads`` move bytes; ``records`` are LXD's objects
and their read-only fields. The typed errors are in ``dedupe.lxd.errors``.
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
