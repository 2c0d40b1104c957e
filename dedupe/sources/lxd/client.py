"""The only module that talks to LXD: a typed client over its REST API.

The connection is pylxd's ``Client`` (it speaks HTTP over the unix socket, and HTTPS
with a client certificate and a pinned server certificate). pylxd 2.4 has no backup
API and misreads volume listings (shared/reference/lxd-facts.md section 1), so every
call below goes through its raw ``client.api`` nodes: requests underneath, with
``stream=True`` for downloads and generator bodies (chunked transfer encoding) for
uploads, so that no tarball is ever held whole in memory or spooled to a temp file.

Facts about LXD 5.0.2 behind each call are in lxd-facts.md; sections are cited inline.
Every method that works inside a project takes ``project``; ``None`` means the project
the client was connected with.
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
import secrets
import ssl
import stat
import subprocess
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import Message
from email.parser import BytesHeaderParser
from pathlib import Path
from typing import Any, Final, Literal, Protocol
from urllib.parse import quote, urlencode, urlsplit

import pylxd
import pylxd.client
import pylxd.exceptions
import requests
import urllib3.exceptions
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from dedupe.errors import DedupeError

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

# --------------------------------------------------------------------------------------
# Errors


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


# --------------------------------------------------------------------------------------
# Types and constants

Project = str | None
Record = dict[str, Any]


class SupportsRead(Protocol):
    def read(self, size: int = ..., /) -> bytes: ...


# What an upload accepts: bytes, a readable (file, ExportStream, socket file), or an
# iterable of byte chunks (a generator rebuilding a tarball).
UploadSource = bytes | bytearray | memoryview | SupportsRead | Iterable[bytes]

SOCKET_CANDIDATES: Final = (
    Path("/var/snap/lxd/common/lxd/unix.socket"),
    Path("/var/lib/lxd/unix.socket"),
)
DEFAULT_HTTPS_PORT: Final = 8443
DEFAULT_TIMEOUT: Final = (10.0, 300.0)  # (connect, read) seconds for every request
OPERATION_WAIT_SECONDS: Final = 30  # lxd-facts.md section 1 item 6
UPLOAD_CHUNK: Final = 1 << 20
BACKUP_PREFIX: Final = "dedupe-"

# Operation status codes below 200 mean "not finished" (created, started, running, ...).
_STATUS_SUCCESS: Final = 200


def find_socket() -> Path:
    """The local LXD socket: ``$LXD_DIR/unix.socket`` when LXD_DIR is set (authoritative,
    as in pylxd and lxc), else the snap's, else Debian's. Returns the first candidate
    that exists, or the last one tried (the caller reports it as unreachable)."""
    lxd_dir = os.environ.get("LXD_DIR")
    if lxd_dir:
        return Path(lxd_dir) / "unix.socket"
    for candidate in SOCKET_CANDIDATES:
        if candidate.exists():
            return candidate
    return SOCKET_CANDIDATES[-1]


# --------------------------------------------------------------------------------------
# Read-only fields (lxd-facts.md section 5)

_READ_ONLY: Final[dict[str, frozenset[str]]] = {
    "project": frozenset({"used_by"}),
    "storage_pool": frozenset({"used_by", "status", "locations"}),
    "network": frozenset({"used_by", "managed", "status", "locations"}),
    "network_acl": frozenset({"used_by"}),
    "network_zone": frozenset({"used_by"}),
    "profile": frozenset({"used_by", "project"}),
    "certificate": frozenset({"fingerprint"}),
    "image_alias": frozenset({"type"}),
    # PUT /1.0/images/<fp> takes only these; everything else is server-generated
    "image": frozenset(
        {
            "aliases",
            "architecture",
            "cached",
            "created_at",
            "filename",
            "fingerprint",
            "last_used_at",
            "size",
            "type",
            "uploaded_at",
            "update_source",
            "project",
        }
    ),
}
# Fields a PUT (update of an existing object) does not take besides the read-only ones.
_NOT_IN_PUT: Final[dict[str, frozenset[str]]] = {
    "project": frozenset({"name"}),
    "profile": frozenset({"name"}),
    "network": frozenset({"name", "type"}),
    "network_acl": frozenset({"name"}),
    "storage_pool": frozenset({"name", "driver"}),
}
RecordKind = Literal[
    "project",
    "storage_pool",
    "network",
    "network_acl",
    "network_zone",
    "profile",
    "certificate",
    "image_alias",
    "image",
    "server_config",
]


def strip_read_only(kind: RecordKind, record: Record) -> Record:
    """A copy of ``record`` (as read with ``?recursion=1``) without the fields LXD
    generates itself, ready to POST. For ``server_config`` the record is the config
    map of ``GET /1.0``: write-only keys (``core.trust_password``) read back as boolean
    ``true`` and cannot be restored, so they are dropped."""
    if kind == "server_config":
        return {k: v for k, v in record.items() if not isinstance(v, bool)}
    try:
        drop = _READ_ONLY[kind]
    except KeyError:
        raise ValueError(f"unknown LXD record kind {kind!r}") from None
    return {k: v for k, v in record.items() if k not in drop}


def _for_put(kind: str, record: Record) -> Record:
    drop = _READ_ONLY[kind] | _NOT_IN_PUT.get(kind, frozenset())
    return {k: v for k, v in record.items() if k not in drop}


# --------------------------------------------------------------------------------------
# Streams


class ExportStream(io.RawIOBase):
    """A download in progress: a readable body that is never loaded whole.

    ``read(n)`` returns at most n bytes and b"" at the end. A connection cut, or a body
    shorter (or longer) than its Content-Length, raises ``LXDStreamBroken`` instead of
    a silent end. Closing it closes the HTTP response (and its connection).
    """

    def __init__(self, response: requests.Response, what: str) -> None:
        super().__init__()
        self._response = response
        self._raw = response.raw
        self.what = what
        length = response.headers.get("Content-Length", "")
        self.length: int | None = int(length) if length.isdigit() else None
        self.content_type: str = response.headers.get("Content-Type", "")
        self.headers = response.headers
        self.position = 0

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        if self.closed:
            raise ValueError(f"read from a closed LXD stream ({self.what})")
        if size is None or size < 0:
            return self.readall()
        if size == 0:
            return b""
        try:
            data: bytes = self._raw.read(size)
        except (urllib3.exceptions.HTTPError, OSError) as e:
            raise LXDStreamBroken(
                f"LXD stream {self.what} broke after {self.position} of "
                f"{self._expected()} bytes: {e}"
            ) from e
        if not data:
            if self.length is not None and self.position != self.length:
                raise LXDStreamBroken(
                    f"LXD stream {self.what} ended after {self.position} of {self.length} bytes"
                )
            return b""
        self.position += len(data)
        if self.length is not None and self.position > self.length:
            raise LXDStreamBroken(
                f"LXD stream {self.what} longer than its Content-Length {self.length}"
            )
        return data

    def readall(self) -> bytes:
        parts: list[bytes] = []
        while chunk := self.read(UPLOAD_CHUNK):
            parts.append(chunk)
        return b"".join(parts)

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        data = self.read(len(view))
        view[: len(data)] = data
        return len(data)

    def close(self) -> None:
        if not self.closed:
            self._response.close()
        super().close()

    def _expected(self) -> str:
        return str(self.length) if self.length is not None else "?"


class _MultipartReader:
    """A streaming multipart/form-data parser: parts one after the other, each read in
    pieces, holding at most one block of the body (no spooling, no whole parts).

    Go's writer (LXD) starts with ``--B\\r\\n``; each part is headers, a blank line, the
    data, then ``\\r\\n--B``; ``--`` after the last delimiter ends the body.
    """

    _HEADER_LIMIT: Final = 64 * 1024

    def __init__(self, read: Callable[[int], bytes], boundary: bytes, what: str) -> None:
        self._read = read
        self._delim = b"\r\n--" + boundary
        self._what = what
        self._buf = bytearray(b"\r\n")  # so the first delimiter looks like the others
        self._pos = 0
        self._eof = False
        self._avail = 0  # bytes from _pos known to be data of the current part
        self._delim_next = False  # the delimiter follows those bytes
        self.finished = False  # the closing delimiter has been read

    def _fill(self) -> bool:
        if self._eof:
            return False
        data = self._read(256 * 1024)
        if not data:
            self._eof = True
            return False
        if self._pos:
            del self._buf[: self._pos]
            self._pos = 0
        self._buf += data
        return True

    def _need(self, n: int) -> bool:
        while len(self._buf) - self._pos < n:
            if not self._fill():
                return False
        return True

    def skip_preamble(self) -> None:
        while (i := self._buf.find(self._delim, self._pos)) < 0:
            keep = len(self._buf) - len(self._delim) + 1
            self._pos = max(self._pos, keep)
            if not self._fill():
                raise LXDStreamBroken(f"LXD stream {self._what}: no multipart boundary")
        self._pos = i + len(self._delim)
        self._after_delimiter()

    def _after_delimiter(self) -> None:
        """After a delimiter: ``--`` ends the body, else skip to the end of the line."""
        if not self._need(2):
            raise LXDStreamBroken(f"LXD stream {self._what}: multipart body cut at a boundary")
        if self._buf[self._pos : self._pos + 2] == b"--":
            self._pos += 2
            self.finished = True
            while self._fill():  # epilogue: ignored
                self._pos = len(self._buf)
            return
        while (i := self._buf.find(b"\r\n", self._pos)) < 0:
            if len(self._buf) - self._pos > 1024 or not self._fill():
                raise LXDStreamBroken(f"LXD stream {self._what}: malformed multipart boundary")
        self._pos = i + 2

    def next_headers(self) -> Message | None:
        """The headers of the next part, or None after the closing delimiter."""
        if self.finished:
            return None
        while (i := self._buf.find(b"\r\n\r\n", self._pos)) < 0:
            if len(self._buf) - self._pos > self._HEADER_LIMIT:
                raise LXDStreamBroken(f"LXD stream {self._what}: multipart headers too long")
            if not self._fill():
                raise LXDStreamBroken(f"LXD stream {self._what}: cut in multipart headers")
        raw = bytes(self._buf[self._pos : i + 4])
        self._pos = i + 4
        self._avail, self._delim_next = 0, False
        return BytesHeaderParser().parsebytes(raw)

    def read_part(self, size: int) -> bytes:
        """Up to ``size`` bytes of the current part; b"" at its end (the delimiter and
        the line after it are then consumed)."""
        while self._avail == 0:
            if self._delim_next:
                self._pos += len(self._delim)
                self._delim_next = False
                self._after_delimiter()
                return b""
            i = self._buf.find(self._delim, self._pos)
            if i >= 0:
                self._avail, self._delim_next = i - self._pos, True
            else:
                self._avail = max(0, len(self._buf) - self._pos - len(self._delim) + 1)
                if self._avail == 0 and not self._fill():
                    raise LXDStreamBroken(f"LXD stream {self._what}: multipart body cut in a part")
        take = min(size, self._avail)
        out = bytes(self._buf[self._pos : self._pos + take])
        self._pos += take
        self._avail -= take
        return out


class ImagePart(io.RawIOBase):
    """One file of an image export: ``metadata``, ``rootfs`` or ``unified``.

    Read it to its end before asking ``ImageExport.parts`` for the next one (the rest
    is skipped otherwise, and still hashed). The read that reaches the end of the last
    part checks the fingerprint and raises ``ImageFingerprintMismatch``.
    """

    def __init__(
        self,
        export: ImageExport,
        name: str,
        filename: str,
        read: Callable[[int], bytes],
        last: Callable[[], bool],
    ) -> None:
        super().__init__()
        self.name = name
        self.filename = filename
        self.size = 0
        self.done = False
        self._export = export
        self._read_fn = read
        self._is_last = last

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0:
            return self.readall()
        if self.done or size == 0:
            return b""
        data = self._read_fn(size)
        if data:
            self.size += len(data)
            self._export._hash.update(data)
            return data
        self.done = True
        if self._is_last():
            self._export._check()
        return b""

    def readall(self) -> bytes:
        parts: list[bytes] = []
        while chunk := self.read(UPLOAD_CHUNK):
            parts.append(chunk)
        return b"".join(parts)

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        data = self.read(len(view))
        view[: len(data)] = data
        return len(data)

    def drain(self) -> None:
        while self.read(UPLOAD_CHUNK):
            pass


class ImageExport:
    """An image as ``GET /1.0/images/<fp>/export`` sends it (lxd-facts.md section 4).

    ``split`` images come as multipart/form-data with a ``metadata`` and a ``rootfs``
    part; unified ones as a single body (part name ``unified``). ``parts()`` yields them
    in order, streamed (a small incremental multipart parser, nothing spooled).
    sha256 of all parts' bytes must equal the fingerprint: the end of the last part, or
    ``verify()``, raises ``ImageFingerprintMismatch`` otherwise. Use it as a context
    manager (it closes the response).
    """

    def __init__(self, stream: ExportStream, fingerprint: str) -> None:
        self._stream = stream
        self.fingerprint = fingerprint
        self._hash = hashlib.sha256()
        self.verified = False
        content_type = stream.content_type
        self.split = content_type.lower().startswith("multipart/")
        self._multipart: _MultipartReader | None = None
        self._started = False
        if self.split:
            msg = Message()
            msg["Content-Type"] = content_type
            boundary = msg.get_param("boundary")
            if not isinstance(boundary, str) or not boundary:
                raise LXDStreamBroken(f"LXD stream {stream.what}: multipart without boundary")
            self._multipart = _MultipartReader(stream.read, boundary.encode(), stream.what)

    def parts(self) -> Iterator[ImagePart]:
        if self._started:
            raise ValueError(f"image {self.fingerprint} export already iterated")
        self._started = True
        if self._multipart is None:
            name = _disposition_filename(self._stream.headers.get("Content-Disposition", ""))
            part = ImagePart(
                self,
                "unified",
                name or f"{self.fingerprint}.tar.gz",
                self._stream.read,
                lambda: True,
            )
            yield part
            part.drain()
            return
        mp = self._multipart
        mp.skip_preamble()
        names: list[str] = []
        while (headers := mp.next_headers()) is not None:
            name = str(headers.get_param("name", "", header="content-disposition"))
            filename = str(headers.get_param("filename", "", header="content-disposition"))
            names.append(name)
            part = ImagePart(self, name, filename, mp.read_part, lambda: mp.finished)
            yield part
            part.drain()
        if names != ["metadata", "rootfs"]:
            raise LXDStreamBroken(
                f"LXD stream {self._stream.what}: expected parts metadata, rootfs; got {names}"
            )
        self._check()

    def verify(self) -> str:
        """Read whatever is left, then check the fingerprint; returns it."""
        if not self._started:
            for part in self.parts():
                part.drain()
        elif not self.verified:
            raise ValueError(f"image {self.fingerprint} export not read to its end")
        return self.fingerprint

    def _check(self) -> None:
        if self.verified:
            return
        actual = self._hash.hexdigest()
        if actual != self.fingerprint:
            raise ImageFingerprintMismatch(
                f"image {self.fingerprint} exported by LXD ({self._stream.what}) hashes to {actual}"
            )
        self.verified = True

    def close(self) -> None:
        self._stream.close()

    def __enter__(self) -> ImageExport:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _disposition_filename(value: str) -> str:
    msg = Message()
    msg["Content-Disposition"] = value
    return str(msg.get_param("filename", "", header="content-disposition") or "")


def _chunks(source: UploadSource) -> Iterator[bytes]:
    """Turn any upload source into non-empty byte chunks (an empty chunk would end a
    chunked body early)."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        if len(source):
            yield bytes(source)
        return
    read = getattr(source, "read", None)
    if callable(read):
        while chunk := read(UPLOAD_CHUNK):
            yield bytes(chunk)
        return
    for chunk in source:  # type: ignore[union-attr]
        if chunk:
            yield bytes(chunk)


@dataclass(frozen=True)
class StaleBackup:
    """A server-side backup with our prefix, probably left by a crash."""

    kind: Literal["instance", "volume"]
    project: str
    owner: str  # instance or volume name
    name: str
    created_at: str
    pool: str = ""  # volumes only


# --------------------------------------------------------------------------------------
# Errors from requests / pylxd


def _causes(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and everything it wraps (cause, context, urllib3 reasons, args)."""
    seen: set[int] = set()
    todo = [exc]
    while todo:
        e = todo.pop()
        if id(e) in seen:
            continue
        seen.add(id(e))
        yield e
        for inner in (e.__cause__, e.__context__, getattr(e, "reason", None), *e.args):
            if isinstance(inner, BaseException):
                todo.append(inner)


def _connection_error(exc: BaseException, where: str) -> LXDError:
    """Classify a failure to talk to ``where`` at all."""
    causes = list(_causes(exc))
    for e in causes:
        if isinstance(e, PermissionError):
            return LXDPermissionDenied(f"permission denied opening LXD at {where}: {e}")
    for e in causes:
        if isinstance(e, (ssl.SSLError, requests.exceptions.SSLError, urllib3.exceptions.SSLError)):
            return LXDUntrustedServer(f"TLS with LXD at {where} refused: {e}")
    for e in causes:
        if isinstance(e, (TimeoutError, requests.exceptions.Timeout)):
            return LXDUnreachable(f"LXD unreachable at {where}: timed out")
    for e in causes:
        if isinstance(e, (ConnectionRefusedError, FileNotFoundError)):
            return LXDUnreachable(f"LXD unreachable at {where}: {e.strerror or e}")
    return LXDUnreachable(f"LXD unreachable at {where}: {exc}")


_KINDS: Final = {
    "instances": "instance",
    "snapshots": "snapshot",
    "backups": "backup",
    "storage-pools": "storage pool",
    "volumes": "volume",
    "images": "image",
    "aliases": "image alias",
    "profiles": "profile",
    "networks": "network",
    "network-acls": "network ACL",
    "network-zones": "network zone",
    "projects": "project",
    "operations": "operation",
    "certificates": "certificate",
}


def _describe(segments: list[str]) -> str:
    """``['instances', 'c1', 'backups', 'b']`` -> ``instance 'c1' backup 'b'``."""
    words: list[str] = []
    i = 0
    while i < len(segments):
        kind = _KINDS.get(segments[i])
        if kind and i + 1 < len(segments):
            if kind == "volume" and i + 2 < len(segments):  # volumes/<type>/<name>
                words.append(f"{segments[i + 1]} volume {segments[i + 2]!r}")
                i += 3
                continue
            words.append(f"{kind} {segments[i + 1]!r}")
            i += 2
        else:
            i += 1
    return " ".join(words) or "/".join(segments)


def _lxd_message(response: requests.Response) -> str:
    try:
        data = response.json()
    except ValueError:
        return response.text[:200] or response.reason
    if isinstance(data, dict):
        if data.get("error"):
            return str(data["error"])
        meta = data.get("metadata")
        if isinstance(meta, dict) and meta.get("err"):
            return str(meta["err"])
    return response.reason or str(response.status_code)


# --------------------------------------------------------------------------------------
# The client


class LXDClient:
    """One connection to one LXD server; see the module docstring."""

    def __init__(
        self, client: pylxd.Client, endpoint: str, project: str, socket_path: Path | None
    ) -> None:
        self._pylxd = client
        self.endpoint = endpoint  # "unix:/var/lib/lxd/unix.socket" or "https://host:8443"
        self.project = project
        self.socket_path = socket_path
        api = client.api
        # /internal/* is beside /1.0, so build a node at the root with pylxd's own class.
        root = api._api_endpoint[: -len("/1.0")]
        self._root = type(api)(root, api.session, timeout=api._timeout)

    # ---------------------------------------------------------------- connection

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
            return cls._connect_socket(path, project, timeout)
        return cls._connect_https(remote, cert, key, verify, project, timeout)

    @classmethod
    def _connect_socket(cls, path: Path, project: str, timeout: tuple[float, float]) -> LXDClient:
        where = f"unix:{path}"
        try:
            mode = path.stat().st_mode
        except PermissionError as e:
            raise LXDPermissionDenied(f"permission denied opening LXD at {where}: {e}") from e
        except OSError as e:
            raise LXDUnreachable(f"LXD unreachable at {where}: no such socket") from e
        if not stat.S_ISSOCK(mode):
            raise LXDUnreachable(f"LXD unreachable at {where}: not a socket")
        # The path exists, so pylxd makes it http+unix:// (it would treat a missing
        # path as an HTTP URL, hence the check above).
        client = cls._pylxd_client(where, endpoint=str(path), timeout=timeout)
        return cls(client, where, project, path)

    @classmethod
    def _connect_https(
        cls,
        remote: str,
        cert: Path | None,
        key: Path | None,
        verify: bool | str | Path,
        project: str,
        timeout: tuple[float, float],
    ) -> LXDClient:
        url = remote if "://" in remote else f"https://{remote}"
        parts = urlsplit(url)
        try:
            port = parts.port
        except ValueError:
            port = -1
        if parts.scheme != "https" or not parts.hostname or port == -1 or parts.path.strip("/"):
            raise LXDError(f"LXD remote {remote!r} is not https://host[:port]")
        netloc = parts.netloc if port else f"{parts.netloc}:{DEFAULT_HTTPS_PORT}"
        url = f"https://{netloc}"
        if (cert is None) != (key is None):
            raise LXDError(f"LXD remote {url}: give both a client certificate and its key")
        if cert is None and key is None and Path(pylxd.client.DEFAULT_CERTS.cert).is_file():
            cert, key = Path(pylxd.client.DEFAULT_CERTS.cert), Path(pylxd.client.DEFAULT_CERTS.key)
        for f in (cert, key):
            if f is not None and not Path(f).is_file():
                raise LXDError(f"LXD remote {url}: client certificate file {f} not found")
        pair = (str(cert), str(key)) if cert is not None and key is not None else None
        if verify is True:  # like lxc (and pylxd): a server cert accepted earlier is pinned
            known = Path(pylxd.client.CERTS_PATH) / "servercerts" / f"{parts.hostname}.crt"
            verify = known if known.is_file() else True
        if not isinstance(verify, bool) and not Path(verify).is_file():
            raise LXDError(f"LXD remote {url}: server certificate file {verify} not found")
        # We build the session (pylxd would build the same one) for two reasons:
        # - requests lets $REQUESTS_CA_BUNDLE / $CURL_CA_BUNDLE override a session's
        #   ``verify`` (requests issue #3829), which silently turns pylxd's pinning into a
        #   CA check (and verify=False into verify=True): trust_env is off unless
        #   verify=True, where the environment's CA bundle is what the user wants;
        # - pylxd pins whatever file it is given by fingerprint, which is wrong for a CA
        #   bundle: that case gets a plain session that verifies the chain and host name.
        if isinstance(verify, bool) or not _is_single_self_signed(Path(verify)):
            session = requests.Session()
            session.verify = verify if isinstance(verify, bool) else str(verify)
            session.cert = pair
        else:
            session = pylxd.client.get_session_for_url(url, verify=str(verify), cert=pair)
        session.trust_env = verify is True
        client = cls._pylxd_client(url, endpoint=url, cert=pair, timeout=timeout, session=session)
        if client.host_info.get("auth") != "trusted":
            raise LXDPermissionDenied(
                f"LXD at {url} does not trust the client certificate {cert or '(none)'}"
            )
        return cls(client, url, project, None)

    @staticmethod
    def _pylxd_client(where: str, **kwargs: Any) -> pylxd.Client:
        try:
            return pylxd.Client(**kwargs)
        except pylxd.exceptions.LXDAPIException as e:
            raise LXDError(f"LXD at {where} answered GET /1.0 with an error: {e}") from e
        except (
            pylxd.exceptions.ClientConnectionFailed,
            requests.exceptions.RequestException,
            urllib3.exceptions.HTTPError,
            OSError,
        ) as e:
            raise _connection_error(e, where) from e

    def close(self) -> None:
        self._pylxd.api.session.close()

    def __enter__(self) -> LXDClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---------------------------------------------------------------- raw requests

    def _project(self, project: Project) -> str:
        return project or self.project

    def request(
        self,
        method: str,
        segments: Iterable[str],
        *,
        project: Project | Literal[False] = None,
        params: dict[str, Any] | None = None,
        json: Any = None,
        data: Any = None,
        headers: dict[str, str] | None = None,
        stream: bool = False,
    ) -> requests.Response:
        """One HTTP request through pylxd's raw API nodes. ``segments`` are unquoted
        path parts below the root (``["1.0", "instances", name]``). ``project=False``
        sends no project (server-wide objects). Errors become ``LXDError`` subclasses."""
        segs = list(segments)
        node = self._root
        for seg in segs:
            node = node[quote(seg, safe="")]
        query = dict(params or {})
        if project is not False:
            query["project"] = self._project(project)
        path = "/" + "/".join(segs)
        where = f"{method} {path}" + (f"?project={query['project']}" if "project" in query else "")
        kwargs: dict[str, Any] = {"params": query}
        if json is not None:
            kwargs["json"] = json
        if data is not None:
            kwargs["data"] = data
        if headers:
            kwargs["headers"] = headers
        try:
            if method == "GET":
                return node.get(stream=stream, is_api=not stream, **kwargs)  # type: ignore[no-any-return]
            return getattr(node, method.lower())(**kwargs)  # type: ignore[no-any-return]
        except pylxd.exceptions.LXDAPIException as e:
            raise self._api_error(e.response, where, segs) from e
        except LXDError:
            raise  # from an upload generator
        except (requests.exceptions.ChunkedEncodingError, urllib3.exceptions.ProtocolError) as e:
            raise LXDStreamBroken(f"LXD stream {where} broke: {e}") from e
        except (requests.exceptions.RequestException, urllib3.exceptions.HTTPError) as e:
            cut = (BrokenPipeError, ConnectionResetError)
            if data is not None and any(isinstance(c, cut) for c in _causes(e)):
                # LXD hung up while we were still sending (it refused the upload early)
                raise LXDStreamBroken(f"LXD cut the upload {where}: {e}") from e
            raise _connection_error(e, f"{self.endpoint} ({where})") from e

    def _api_error(self, response: requests.Response, where: str, segs: list[str]) -> LXDError:
        message = _lxd_message(response)
        status = response.status_code
        if status == 404:
            return LXDNotFound(
                f"LXD: {_describe(segs[1:])} not found ({where}: {message})", status=status
            )
        if status == 403:
            return LXDPermissionDenied(f"LXD refused {where}: {message} (403)", status=status)
        return LXDError(f"LXD refused {where}: {message} ({status})", status=status)

    def _sync(self, method: str, segments: Iterable[str], **kwargs: Any) -> Any:
        """A request whose answer is a sync or async response: returns the metadata
        (of the finished operation for async ones)."""
        segs = list(segments)
        response = self.request(method, segs, **kwargs)
        body = response.json()
        if body.get("type") == "async":
            what = f"{method} /{'/'.join(segs)}"
            return self.wait_operation(body["operation"], what, project=kwargs.get("project"))
        return body.get("metadata")

    def _get(
        self,
        *segments: str,
        project: Project | Literal[False] = None,
        params: dict[str, Any] | None = None,
    ) -> Any:
        return self._sync("GET", ["1.0", *segments], project=project, params=params)

    def _list(self, *segments: str, project: Project | Literal[False] = None) -> list[Record]:
        result = self._get(*segments, project=project, params={"recursion": 1})
        return list(result or [])

    def wait_operation(
        self, operation: str, what: str = "", project: Project | Literal[False] = None
    ) -> Record:
        """Wait for an operation (its id or ``/1.0/operations/<id>`` URL) to finish,
        looping on ``wait?timeout=30``; returns its record or raises
        ``LXDOperationFailed`` with LXD's err text."""
        op_id = operation.split("?")[0].rstrip("/").rsplit("/", 1)[-1]
        while True:
            try:
                response = self.request(
                    "GET",
                    ["1.0", "operations", op_id, "wait"],
                    project=project,
                    params={"timeout": OPERATION_WAIT_SECONDS},
                )
            except LXDUnreachable as e:
                if not any(isinstance(c, requests.exceptions.ReadTimeout) for c in _causes(e)):
                    raise
                continue  # a slow daemon: ask again
            op = response.json().get("metadata") or {}
            code = int(op.get("status_code", 0))
            if code < _STATUS_SUCCESS:
                continue
            if code != _STATUS_SUCCESS:
                raise LXDOperationFailed(
                    f"LXD operation {op.get('description', op_id)!r} failed"
                    f"{f' ({what})' if what else ''}: {op.get('err') or op.get('status')}",
                    status=code,
                )
            return dict(op)

    # ---------------------------------------------------------------- server, listings

    def server_info(self) -> Record:
        """``GET /1.0``: api_extensions, auth, environment (server_version, server_name,
        storage drivers, ...), config."""
        return dict(self._get(project=False))

    def server_config(self) -> Record:
        return dict(self.server_info().get("config") or {})

    def instances(self, project: Project = None) -> list[Record]:
        return self._list("instances", project=project)

    def instance(self, name: str, project: Project = None) -> Record:
        return dict(self._get("instances", name, project=project))

    def instance_state(self, name: str, project: Project = None) -> Record:
        return dict(self._get("instances", name, "state", project=project))

    def snapshots(self, name: str, project: Project = None) -> list[Record]:
        return self._list("instances", name, "snapshots", project=project)

    def custom_volumes(self, pool: str, project: Project = None) -> list[Record]:
        """Custom volumes of ``pool`` in the project, without their snapshots (which this
        listing returns as ``vol/snap``, and pylxd misparses)."""
        volumes = self._list("storage-pools", pool, "volumes", project=project)
        return [v for v in volumes if v.get("type") == "custom" and "/" not in v.get("name", "")]

    def custom_volume(self, pool: str, name: str, project: Project = None) -> Record:
        return dict(self._get("storage-pools", pool, "volumes", "custom", name, project=project))

    def volume_snapshots(self, pool: str, name: str, project: Project = None) -> list[Record]:
        return self._list(
            "storage-pools", pool, "volumes", "custom", name, "snapshots", project=project
        )

    def storage_pools(self) -> list[Record]:
        return self._list("storage-pools", project=False)

    def storage_pool(self, name: str) -> Record:
        return dict(self._get("storage-pools", name, project=False))

    def images(self, project: Project = None) -> list[Record]:
        return self._list("images", project=project)

    def image(self, fingerprint: str, project: Project = None) -> Record:
        return dict(self._get("images", fingerprint, project=project))

    def image_aliases(self, project: Project = None) -> list[Record]:
        return self._list("images", "aliases", project=project)

    def profiles(self, project: Project = None) -> list[Record]:
        return self._list("profiles", project=project)

    def profile(self, name: str, project: Project = None) -> Record:
        return dict(self._get("profiles", name, project=project))

    def networks(self, project: Project = None) -> list[Record]:
        """Managed networks only (the listing also has the host's interfaces)."""
        return [n for n in self._list("networks", project=project) if n.get("managed")]

    def network(self, name: str, project: Project = None) -> Record:
        return dict(self._get("networks", name, project=project))

    def network_acls(self, project: Project = None) -> list[Record]:
        return self._list("network-acls", project=project)

    def network_acl(self, name: str, project: Project = None) -> Record:
        return dict(self._get("network-acls", name, project=project))

    def projects(self) -> list[Record]:
        return self._list("projects", project=False)

    def project_record(self, name: str) -> Record:
        return dict(self._get("projects", name, project=False))

    def certificates(self) -> list[Record]:
        return self._list("certificates", project=False)

    # ---------------------------------------------------------------- instance backups

    @staticmethod
    def _backup_name(prefix: str) -> str:
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        return f"{prefix}{stamp}-{secrets.token_hex(4)}"

    def create_instance_backup(
        self,
        name: str,
        instance_only: bool,
        name_prefix: str = BACKUP_PREFIX,
        project: Project = None,
        backup: str | None = None,
    ) -> str:
        """Make LXD stage an uncompressed, non-optimized backup tarball; returns its name.
        Delete it afterwards: LXD keeps it forever (section 2.1)."""
        backup = backup or self._backup_name(name_prefix)
        body = {
            "name": backup,
            "instance_only": instance_only,
            "optimized_storage": False,
            "compression_algorithm": "none",
        }
        self._sync("POST", ["1.0", "instances", name, "backups"], project=project, json=body)
        return backup

    def export_instance_backup(
        self, name: str, backup: str, project: Project = None
    ) -> ExportStream:
        """The staged tarball as a stream (also a context manager that closes it)."""
        segs = ["1.0", "instances", name, "backups", backup, "export"]
        response = self.request("GET", segs, project=project, stream=True)
        return ExportStream(response, f"GET /{'/'.join(segs)}")

    def delete_instance_backup(self, name: str, backup: str, project: Project = None) -> None:
        self._sync("DELETE", ["1.0", "instances", name, "backups", backup], project=project)

    def instance_backups(self, name: str, project: Project = None) -> list[Record]:
        return self._list("instances", name, "backups", project=project)

    @contextmanager
    def instance_backup(
        self,
        name: str,
        instance_only: bool = False,
        project: Project = None,
        name_prefix: str = BACKUP_PREFIX,
    ) -> Iterator[ExportStream]:
        """Create a backup, yield its export stream, and always delete the server-side
        backup afterwards (also on errors and KeyboardInterrupt)."""
        backup = self._backup_name(name_prefix)
        with self._deleting(lambda: self.delete_instance_backup(name, backup, project)):
            self.create_instance_backup(name, instance_only, project=project, backup=backup)
            with self.export_instance_backup(name, backup, project) as stream:
                yield stream

    @contextmanager
    def _deleting(self, delete: Callable[[], None]) -> Iterator[None]:
        """Run ``delete`` on the way out, whatever happened; a failure to delete is
        raised only when nothing else is (else added as a note to the first error)."""
        try:
            yield
        except BaseException as e:
            try:
                delete()
            except LXDNotFound:
                pass
            except LXDError as cleanup:
                e.add_note(f"also: could not delete the server-side backup: {cleanup}")
            raise
        with suppress(LXDNotFound):
            delete()

    # ---------------------------------------------------------------- volume backups

    def create_volume_backup(
        self,
        pool: str,
        volume: str,
        volume_only: bool,
        name_prefix: str = BACKUP_PREFIX,
        project: Project = None,
        backup: str | None = None,
    ) -> str:
        backup = backup or self._backup_name(name_prefix)
        body = {
            "name": backup,
            "volume_only": volume_only,
            "optimized_storage": False,
            "compression_algorithm": "none",
        }
        segs = ["1.0", "storage-pools", pool, "volumes", "custom", volume, "backups"]
        self._sync("POST", segs, project=project, json=body)
        return backup

    def export_volume_backup(
        self, pool: str, volume: str, backup: str, project: Project = None
    ) -> ExportStream:
        segs = [
            "1.0",
            "storage-pools",
            pool,
            "volumes",
            "custom",
            volume,
            "backups",
            backup,
            "export",
        ]
        response = self.request("GET", segs, project=project, stream=True)
        return ExportStream(response, f"GET /{'/'.join(segs)}")

    def delete_volume_backup(
        self, pool: str, volume: str, backup: str, project: Project = None
    ) -> None:
        segs = ["1.0", "storage-pools", pool, "volumes", "custom", volume, "backups", backup]
        self._sync("DELETE", segs, project=project)

    def volume_backups(self, pool: str, volume: str, project: Project = None) -> list[Record]:
        return self._list(
            "storage-pools", pool, "volumes", "custom", volume, "backups", project=project
        )

    @contextmanager
    def volume_backup(
        self,
        pool: str,
        volume: str,
        volume_only: bool = False,
        project: Project = None,
        name_prefix: str = BACKUP_PREFIX,
    ) -> Iterator[ExportStream]:
        backup = self._backup_name(name_prefix)
        with self._deleting(lambda: self.delete_volume_backup(pool, volume, backup, project)):
            self.create_volume_backup(pool, volume, volume_only, project=project, backup=backup)
            with self.export_volume_backup(pool, volume, backup, project) as stream:
                yield stream

    # ---------------------------------------------------------------- stale backups

    def stale_backups(
        self,
        prefix: str = BACKUP_PREFIX,
        project: Project = None,
        older_than: timedelta | None = None,
    ) -> list[StaleBackup]:
        """Server-side backups of the project's instances and custom volumes whose
        names start with ``prefix`` (left by a crash). ``older_than`` spares recent ones
        that a concurrent run may still be exporting."""
        proj = self._project(project)
        cutoff = datetime.now(UTC) - older_than if older_than is not None else None
        found: list[StaleBackup] = []

        def wanted(record: Record) -> bool:
            if not str(record.get("name", "")).startswith(prefix):
                return False
            return cutoff is None or _parse_time(record.get("created_at", "")) <= cutoff

        for inst in self.instances(proj):
            for b in self.instance_backups(inst["name"], proj):
                if wanted(b):
                    found.append(
                        StaleBackup(
                            "instance", proj, inst["name"], b["name"], b.get("created_at", "")
                        )
                    )
        for pool in self.storage_pools():
            for vol in self.custom_volumes(pool["name"], proj):
                for b in self.volume_backups(pool["name"], vol["name"], proj):
                    if wanted(b):
                        found.append(
                            StaleBackup(
                                "volume",
                                proj,
                                vol["name"],
                                b["name"],
                                b.get("created_at", ""),
                                pool["name"],
                            )
                        )
        return found

    def delete_stale_backups(
        self,
        prefix: str = BACKUP_PREFIX,
        project: Project = None,
        older_than: timedelta | None = None,
    ) -> list[StaleBackup]:
        stale = self.stale_backups(prefix, project, older_than)
        for b in stale:
            try:
                if b.kind == "instance":
                    self.delete_instance_backup(b.owner, b.name, b.project)
                else:
                    self.delete_volume_backup(b.pool, b.owner, b.name, b.project)
            except LXDNotFound:
                pass
        return stale

    # ---------------------------------------------------------------- imports

    def _upload(
        self, segs: list[str], source: UploadSource, headers: dict[str, str], project: Project
    ) -> Record:
        """POST a streamed body (chunked transfer encoding) and wait for the operation."""
        return dict(
            self._sync("POST", segs, project=project, data=_chunks(source), headers=headers) or {}
        )

    def import_instance(
        self,
        stream: UploadSource,
        name: str | None = None,
        pool: str | None = None,
        project: Project = None,
    ) -> str:
        """Create an instance from a backup tarball (any compression LXD sniffs), streamed
        from ``stream``; returns the new instance's name."""
        headers = {"Content-Type": "application/octet-stream"}
        if name:
            headers["X-LXD-name"] = name
        if pool:
            headers["X-LXD-pool"] = pool
        op = self._upload(["1.0", "instances"], stream, headers, project)
        return name or _resource_name(op, "instances")

    def import_custom_volume(
        self, pool: str, stream: UploadSource, name: str | None = None, project: Project = None
    ) -> str:
        """Create a custom volume (with its snapshots) from a volume backup tarball. Only
        ``.../volumes/custom`` accepts it (``.../volumes`` resets the connection)."""
        headers = {"Content-Type": "application/octet-stream"}
        if name:
            headers["X-LXD-name"] = name
        segs = ["1.0", "storage-pools", pool, "volumes", "custom"]
        op = self._upload(segs, stream, headers, project)
        return name or _resource_name(op, "storage_volumes")

    # ---------------------------------------------------------------- images

    def export_image(self, fingerprint: str, project: Project = None) -> ImageExport:
        segs = ["1.0", "images", fingerprint, "export"]
        response = self.request("GET", segs, project=project, stream=True)
        return ImageExport(ExportStream(response, f"GET /{'/'.join(segs)}"), fingerprint)

    def import_image(
        self,
        data: UploadSource | tuple[UploadSource, UploadSource],
        fingerprint: str | None = None,
        properties: dict[str, str] | None = None,
        public: bool = False,
        filename: str | None = None,
        project: Project = None,
    ) -> str:
        """Upload an image: one unified tarball, or ``(metadata, rootfs)`` sent as
        multipart/form-data like ``lxc image import``. Returns the fingerprint LXD
        computed; raises ``ImageFingerprintMismatch`` when it is not ``fingerprint``.
        Aliases are not part of an upload: add them with ``add_image_alias``."""
        headers = {"X-LXD-public": "1" if public else "0"}
        if fingerprint:
            headers["X-LXD-fingerprint"] = fingerprint
        if filename:
            headers["X-LXD-filename"] = filename
        if properties:
            headers["X-LXD-properties"] = urlencode(properties)
        body: Iterator[bytes]
        if isinstance(data, tuple):
            boundary = secrets.token_hex(16)
            headers["Content-Type"] = f"multipart/form-data; boundary={boundary}"
            body = _multipart_body(
                boundary,
                [("metadata", "metadata.tar.gz", data[0]), ("rootfs", "rootfs.tar.gz", data[1])],
            )
        else:
            headers["Content-Type"] = "application/octet-stream"
            body = _chunks(data)
        try:
            op = self._upload(["1.0", "images"], body, headers, project)
        except LXDOperationFailed as e:
            if "fingerprints don't match" in str(e):  # LXD checked X-LXD-fingerprint
                raise ImageFingerprintMismatch(
                    f"image uploaded to LXD as {fingerprint}: {e}", status=e.status
                ) from e
            raise
        actual = str((op.get("metadata") or {}).get("fingerprint", ""))
        if fingerprint and actual != fingerprint:
            raise ImageFingerprintMismatch(
                f"image uploaded to LXD as {fingerprint} got fingerprint {actual or '?'}"
            )
        return actual

    def update_image(self, fingerprint: str, record: Record, project: Project = None) -> None:
        """PUT the mutable fields of an image record (auto_update, properties, public,
        expires_at, profiles)."""
        self._sync(
            "PUT",
            ["1.0", "images", fingerprint],
            project=project,
            json=strip_read_only("image", record),
        )

    def delete_image(self, fingerprint: str, project: Project = None) -> None:
        self._sync("DELETE", ["1.0", "images", fingerprint], project=project)

    def add_image_alias(
        self, name: str, target: str, description: str = "", project: Project = None
    ) -> None:
        body = {"name": name, "target": target, "description": description}
        self._sync("POST", ["1.0", "images", "aliases"], project=project, json=body)

    def delete_image_alias(self, name: str, project: Project = None) -> None:
        self._sync("DELETE", ["1.0", "images", "aliases", name], project=project)

    def publish_instance(
        self,
        name: str,
        snapshot: str | None = None,
        aliases: Iterable[str] = (),
        properties: dict[str, str] | None = None,
        project: Project = None,
    ) -> str:
        """Make a (unified) image from an instance or one of its snapshots; returns the
        fingerprint."""
        source = {
            "type": "snapshot" if snapshot else "instance",
            "name": f"{name}/{snapshot}" if snapshot else name,
        }
        body = {
            "source": source,
            "properties": properties or {},
            "aliases": [{"name": a} for a in aliases],
        }
        op = self._sync("POST", ["1.0", "images"], project=project, json=body)
        return str((op.get("metadata") or {}).get("fingerprint", ""))

    # ---------------------------------------------------------------- config records

    def create_profile(self, record: Record, project: Project = None) -> None:
        self._sync(
            "POST", ["1.0", "profiles"], project=project, json=strip_read_only("profile", record)
        )

    def update_profile(self, record: Record, project: Project = None) -> None:
        """PUT a full profile record over the existing one (the only way for ``default``)."""
        self._sync(
            "PUT",
            ["1.0", "profiles", record["name"]],
            project=project,
            json=_for_put("profile", record),
        )

    def delete_profile(self, name: str, project: Project = None) -> None:
        self._sync("DELETE", ["1.0", "profiles", name], project=project)

    def create_network(self, record: Record, project: Project = None) -> None:
        self._sync(
            "POST", ["1.0", "networks"], project=project, json=strip_read_only("network", record)
        )

    def update_network(self, record: Record, project: Project = None) -> None:
        self._sync(
            "PUT",
            ["1.0", "networks", record["name"]],
            project=project,
            json=_for_put("network", record),
        )

    def delete_network(self, name: str, project: Project = None) -> None:
        self._sync("DELETE", ["1.0", "networks", name], project=project)

    def create_network_acl(self, record: Record, project: Project = None) -> None:
        self._sync(
            "POST",
            ["1.0", "network-acls"],
            project=project,
            json=strip_read_only("network_acl", record),
        )

    def update_network_acl(self, record: Record, project: Project = None) -> None:
        self._sync(
            "PUT",
            ["1.0", "network-acls", record["name"]],
            project=project,
            json=_for_put("network_acl", record),
        )

    def delete_network_acl(self, name: str, project: Project = None) -> None:
        self._sync("DELETE", ["1.0", "network-acls", name], project=project)

    def create_project(self, record: Record) -> None:
        self._sync(
            "POST", ["1.0", "projects"], project=False, json=strip_read_only("project", record)
        )

    def update_project(self, record: Record) -> None:
        """PUT description and config (the only way for ``default``, which cannot be
        deleted)."""
        self._sync(
            "PUT",
            ["1.0", "projects", record["name"]],
            project=False,
            json=_for_put("project", record),
        )

    def delete_project(self, name: str) -> None:
        self._sync("DELETE", ["1.0", "projects", name], project=False)

    def create_storage_pool(self, record: Record) -> None:
        """Create an empty pool. A pool whose data survived a database loss comes back
        with ``recover_import`` instead (section 7)."""
        self._sync(
            "POST",
            ["1.0", "storage-pools"],
            project=False,
            json=strip_read_only("storage_pool", record),
        )

    def delete_storage_pool(self, name: str) -> None:
        self._sync("DELETE", ["1.0", "storage-pools", name], project=False)

    def patch_server_config(self, config: dict[str, Any]) -> None:
        """PATCH /1.0: set the given keys (``""`` unsets one), leave the others."""
        self._sync(
            "PATCH",
            ["1.0"],
            project=False,
            json={"config": strip_read_only("server_config", config)},
        )

    def add_certificate(
        self,
        certificate: str | bytes,
        name: str,
        restricted: bool = False,
        projects: Iterable[str] = (),
    ) -> str:
        """Trust a client certificate (PEM or base64 DER); returns its fingerprint."""
        der = _certificate_der(certificate)
        body = {
            "type": "client",
            "name": name,
            "restricted": restricted,
            "projects": list(projects),
            "certificate": base64.b64encode(der).decode(),
        }
        self._sync("POST", ["1.0", "certificates"], project=False, json=body)
        return hashlib.sha256(der).hexdigest()

    def create_certificate(self, record: Record) -> str:
        """Re-create a certificate record as read (its PEM is converted to base64 DER,
        the only form POST accepts)."""
        return self.add_certificate(
            record["certificate"],
            record.get("name", ""),
            bool(record.get("restricted")),
            record.get("projects") or (),
        )

    def delete_certificate(self, fingerprint: str) -> None:
        self._sync("DELETE", ["1.0", "certificates", fingerprint], project=False)

    # ---------------------------------------------------------------- instance state

    def _state(self, name: str, action: str, project: Project, force: bool = False) -> None:
        body = {"action": action, "timeout": 30, "force": force}
        self._sync("PUT", ["1.0", "instances", name, "state"], project=project, json=body)

    def freeze(self, name: str, project: Project = None) -> None:
        self._state(name, "freeze", project)

    def unfreeze(self, name: str, project: Project = None) -> None:
        self._state(name, "unfreeze", project)

    def start(self, name: str, project: Project = None) -> None:
        self._state(name, "start", project)

    def stop(self, name: str, force: bool = True, project: Project = None) -> None:
        self._state(name, "stop", project, force=force)

    def create_snapshot(self, name: str, snap: str, project: Project = None) -> None:
        self._sync(
            "POST", ["1.0", "instances", name, "snapshots"], project=project, json={"name": snap}
        )

    def delete_snapshot(self, name: str, snap: str, project: Project = None) -> None:
        self._sync("DELETE", ["1.0", "instances", name, "snapshots", snap], project=project)

    def create_instance(
        self,
        name: str,
        image_alias: str,
        project: Project = None,
        config: dict[str, str] | None = None,
        devices: dict[str, dict[str, str]] | None = None,
        profiles: list[str] | None = None,
    ) -> None:
        """A container from a local image alias (not started)."""
        body: Record = {
            "name": name,
            "type": "container",
            "source": {"type": "image", "alias": image_alias},
            "config": config or {},
            "devices": devices or {},
        }
        if profiles is not None:
            body["profiles"] = profiles
        self._sync("POST", ["1.0", "instances"], project=project, json=body)

    def delete_instance(self, name: str, project: Project = None) -> None:
        """Delete an instance with its snapshots and backups (it must be stopped)."""
        self._sync("DELETE", ["1.0", "instances", name], project=project)

    def create_custom_volume(
        self, pool: str, name: str, config: dict[str, str] | None = None, project: Project = None
    ) -> None:
        body = {"name": name, "type": "custom", "config": config or {}}
        self._sync(
            "POST", ["1.0", "storage-pools", pool, "volumes", "custom"], project=project, json=body
        )

    def delete_custom_volume(self, pool: str, name: str, project: Project = None) -> None:
        self._sync(
            "DELETE", ["1.0", "storage-pools", pool, "volumes", "custom", name], project=project
        )

    def create_volume_snapshot(
        self, pool: str, name: str, snap: str, project: Project = None
    ) -> None:
        self._sync(
            "POST",
            ["1.0", "storage-pools", pool, "volumes", "custom", name, "snapshots"],
            project=project,
            json={"name": snap},
        )

    # ---------------------------------------------------------------- database, recovery

    def sql_dump(self, database: Literal["global", "local"]) -> bytes:
        """The database as SQL text (``lxd sql <db> .dump``): GET /internal/sql, which
        only root on the unix socket may use. If the API refuses, run ``lxd sql``
        (local socket only: it talks to the daemon of $LXD_DIR)."""
        if database not in ("global", "local"):
            raise ValueError(f"LXD database is 'global' or 'local', not {database!r}")
        try:
            meta = self._sync(
                "GET",
                ["internal", "sql"],
                project=False,
                params={"database": database, "schema": 0},
            )
            return str((meta or {}).get("text", "")).encode()
        except LXDError as e:
            if isinstance(e, (LXDUnreachable, LXDStreamBroken)) or self.socket_path is None:
                raise
            return self._sql_dump_cli(database, e)

    def _sql_dump_cli(self, database: str, api_error: LXDError | None = None) -> bytes:
        assert self.socket_path is not None
        env = dict(os.environ, LXD_DIR=str(self.socket_path.parent))
        try:
            done = subprocess.run(
                ["lxd", "sql", database, ".dump"],
                env=env,
                capture_output=True,
                timeout=120,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as e:
            raise LXDError(
                f"LXD database dump ({database}) via `lxd sql` failed: {e}"
                + (f"; the API said: {api_error}" if api_error else "")
            ) from e
        if done.returncode != 0:
            raise LXDError(
                f"LXD database dump ({database}) via `lxd sql` at {self.socket_path} failed: "
                f"{done.stderr.decode(errors='replace').strip()}"
            )
        return done.stdout

    def recover_validate(self, pools: list[Record]) -> Record:
        """POST /internal/recover/validate: which volumes on the pools LXD does not know
        (``UnknownVolumes``) and what they need first (``DependencyErrors``). Existing
        pools are given by name only; lost ones with driver and config.source."""
        result = self._sync(
            "POST", ["internal", "recover", "validate"], project=False, json={"pools": pools}
        )
        return dict(result or {})

    def recover_import(self, pools: list[Record]) -> Record:
        """POST /internal/recover/import: re-create the database records of everything
        ``recover_validate`` found."""
        result = self._sync(
            "POST", ["internal", "recover", "import"], project=False, json={"pools": pools}
        )
        return dict(result or {})


# --------------------------------------------------------------------------------------
# Helpers


def _multipart_body(boundary: str, parts: list[tuple[str, str, UploadSource]]) -> Iterator[bytes]:
    for field, filename, source in parts:
        yield (
            f"--{boundary}\r\n"
            f'Content-Disposition: form-data; name="{field}"; filename="{filename}"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        yield from _chunks(source)
        yield b"\r\n"
    yield f"--{boundary}--\r\n".encode()


def _resource_name(op: Record, kind: str) -> str:
    for url in (op.get("resources") or {}).get(kind) or []:
        return str(url).split("?")[0].rstrip("/").rsplit("/", 1)[-1]
    return ""


def _parse_time(value: str) -> datetime:
    """LXD's RFC 3339 times (nanoseconds included); unparsable ones count as old."""
    text = value.replace("Z", "+00:00")
    if "." in text:
        head, _, rest = text.partition(".")
        digits = "".join(ch for ch in rest if ch.isdigit())
        zone = rest[len(digits) :]
        text = f"{head}.{digits[:6]}{zone}"
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return datetime.min.replace(tzinfo=UTC)


def _certificate_der(certificate: str | bytes) -> bytes:
    data = certificate.encode() if isinstance(certificate, str) else certificate
    if b"-----BEGIN" in data:
        return x509.load_pem_x509_certificate(data).public_bytes(Encoding.DER)
    return base64.b64decode(data)


def _is_single_self_signed(path: Path) -> bool:
    """True for a file holding one self-signed certificate (LXD's server.crt), which is
    pinned; anything else is used as a CA bundle."""
    try:
        certs = x509.load_pem_x509_certificates(path.read_bytes())
    except (OSError, ValueError):
        return False
    return len(certs) == 1 and certs[0].issuer == certs[0].subject
