"""GETs on the local LXD socket without pylxd and requests: a direct backup talks to LXD
only to read a dozen records (instance, snapshots, pool), and importing pylxd with
requests and urllib3 cost every run ~0.15-0.25 s and ~28 MB of resident memory
(benchmarks/RESULTS.md, issue #14 item 7). Everything else (writes, streams, waits,
remote servers) still goes through pylxd (``dedupe.lxd.api.transport``)."""

from __future__ import annotations

import http.client
import json
import socket
from pathlib import Path
from typing import Any


def lxd_message(data: Any, reason: str, status: int) -> str:
    """LXD's error text in an answer's decoded body (else the HTTP reason)."""
    if isinstance(data, dict):
        if data.get("error"):
            return str(data["error"])
        meta = data.get("metadata")
        if isinstance(meta, dict) and meta.get("err"):
            return str(meta["err"])
    return reason or str(status)


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: Path, timeout: tuple[float, float]) -> None:
        super().__init__("lxd", timeout=timeout[1])
        self._path = path
        self._connect_timeout = timeout[0]

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(self._connect_timeout)
            sock.connect(str(self._path))
            sock.settimeout(self.timeout)
        except BaseException:
            sock.close()
            raise
        self.sock = sock


class SocketGets:
    """One kept-alive HTTP connection to LXD's unix socket, for GETs only."""

    def __init__(self, path: Path, timeout: tuple[float, float]) -> None:
        self.path = path
        self._timeout = timeout
        self._conn: _UnixConnection | None = None

    def get(self, target: str) -> tuple[int, str, Any]:
        """(status, reason, decoded JSON body or None when it is not JSON) of ``GET target``.
        OSError and http.client.HTTPException when LXD cannot be reached; a kept-alive
        connection the server closed meanwhile is opened again once."""
        for attempt in (0, 1):
            fresh = self._conn is None
            if self._conn is None:
                self._conn = _UnixConnection(self.path, self._timeout)
            try:
                self._conn.request("GET", target, headers={"Accept": "application/json"})
                response = self._conn.getresponse()
                body = response.read()
            except (OSError, http.client.HTTPException):
                self.close()
                if fresh or attempt:
                    raise
                continue
            if response.will_close:
                self.close()
            try:
                data = json.loads(body)
            except ValueError:
                data = None
            return response.status, response.reason, data
        raise AssertionError("unreachable")

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
