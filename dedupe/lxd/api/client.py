"""The LXD client: one connection to one LXD server, with a typed method per call.

The connection is pylxd's ``Client`` (it speaks HTTP over the unix socket, and HTTPS
with a client certificate and a pinned server certificate). pylxd 2.4 has no backup
API and misreads volume listings (docs/lxd.md section 1), so every call goes through
its raw ``client.api`` nodes (``transport``): requests underneath,
with ``stream=True`` for downloads and generator bodies (chunked transfer encoding) for
uploads, so that no tarball is ever held whole in memory or spooled to a temp file.

The methods live in mixins by what they touch: ``listings`` (reading objects),
``backups`` and ``imports`` (backup tarballs out and in), ``images``, ``config_writes`` (config
records), ``lifecycle`` (instance state, snapshots, create/delete), ``database`` (SQL
dumps, recovery). Facts about LXD 5.0.2 behind each call are in docs/lxd.md; sections
are cited inline. Every method that works inside a project takes ``project``; ``None``
means the project the client was connected with.
"""

from __future__ import annotations

from pathlib import Path

from dedupe.lxd.api.backups import Backups
from dedupe.lxd.api.config_writes import ConfigWrites
from dedupe.lxd.api.connect import DEFAULT_TIMEOUT, connect_https, connect_socket, find_socket
from dedupe.lxd.api.database import Database
from dedupe.lxd.api.files import Files
from dedupe.lxd.api.images import Images
from dedupe.lxd.api.imports import Imports
from dedupe.lxd.api.lifecycle import Lifecycle


class LXDClient(Backups, Imports, Images, ConfigWrites, Lifecycle, Database, Files):
    """One connection to one LXD server; see the module docstring."""

    @classmethod
    def connect(
        cls,
        remote: str | None = None,
        cert: Path | None = None,
        key: Path | None = None,
        verify: bool | str | Path = True,
        project: str = "default",
        timeout: tuple[float, float] = DEFAULT_TIMEOUT,
    ) -> LXDClient:
        """Connect to the local socket (``remote`` None, a socket path, or ``unix:PATH``)
        or to ``https://host[:8443]`` with a client certificate. ``verify`` is True
        (system CAs), False (no check), or a file: LXD's self-signed ``server.crt``
        (pinned by fingerprint, as lxc does) or a CA bundle."""
        if remote is None or remote.startswith(("/", "unix:")):
            path = find_socket() if remote is None else Path(remote.removeprefix("unix:"))
            make, gets = connect_socket(path, timeout)
            return cls(make, f"unix:{path}", project, path, gets)
        client, url = connect_https(remote, cert, key, verify, timeout)
        return cls(client, url, project, None)
