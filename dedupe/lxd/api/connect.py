"""Reaching LXD: finding the local socket, HTTPS with a client certificate and the
server's certificate pinned (as lxc does) or checked against a CA bundle, and telling
apart why a connection failed (unreachable, permission denied, untrusted server)."""

from __future__ import annotations

import http.client
import os
import ssl
import stat
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import urlsplit

from dedupe.lxd.api.socket_gets import SocketGets, lxd_message
from dedupe.lxd.errors import (
    LXDError,
    LXDPermissionDenied,
    LXDUnreachable,
    LXDUntrustedServer,
)

if TYPE_CHECKING:
    import pylxd

SOCKET_CANDIDATES: Final = (
    Path("/var/snap/lxd/common/lxd/unix.socket"),
    Path("/var/lib/lxd/unix.socket"),
)
DEFAULT_HTTPS_PORT: Final = 8443
DEFAULT_TIMEOUT: Final = (10.0, 300.0)  # (connect, read) seconds for every request


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


def connect_socket(path: Path, timeout: tuple[float, float]) -> tuple[Callable[[], pylxd.Client], SocketGets]:
    """The unix socket at ``path``, checked and asked ``GET /1.0`` (as pylxd's client
    does when it is made): what makes pylxd's client on it when it is first needed, and
    the plain GETs that need no pylxd (``SocketGets``)."""
    where = f"unix:{path}"
    try:
        mode = path.stat().st_mode
    except PermissionError as e:
        raise LXDPermissionDenied(f"permission denied opening LXD at {where}: {e}") from e
    except OSError as e:
        raise LXDUnreachable(f"LXD unreachable at {where}: no such socket") from e
    if not stat.S_ISSOCK(mode):
        raise LXDUnreachable(f"LXD unreachable at {where}: not a socket")
    gets = SocketGets(path, timeout)
    try:
        status, reason, body = gets.get("/1.0")
    except (OSError, http.client.HTTPException) as e:
        raise connection_error(e, where) from e
    if status != 200 or not isinstance(body, dict) or body.get("type") == "error":
        gets.close()
        raise LXDError(f"LXD at {where} answered GET /1.0 with an error: {lxd_message(body, reason, status)} "
                       f"({status})")
    # The path exists, so pylxd makes it http+unix:// (it would treat a missing
    # path as an HTTP URL, hence the check above).
    return (lambda: pylxd_client(where, endpoint=str(path), timeout=timeout)), gets


def connect_https(
    remote: str,
    cert: Path | None,
    key: Path | None,
    verify: bool | str | Path,
    timeout: tuple[float, float],
) -> tuple[pylxd.Client, str]:
    """pylxd's client on ``https://host[:8443]`` with a client certificate, the server's
    certificate pinned (a single self-signed one) or checked against a CA bundle; and
    the URL it connected to."""
    import pylxd.client
    import requests
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
    client = pylxd_client(url, endpoint=url, cert=pair, timeout=timeout, session=session)
    if client.host_info.get("auth") != "trusted":
        raise LXDPermissionDenied(
            f"LXD at {url} does not trust the client certificate {cert or '(none)'}"
        )
    return client, url


def pylxd_client(where: str, **kwargs: Any) -> pylxd.Client:
    import pylxd
    import pylxd.exceptions
    import requests
    import urllib3.exceptions
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
        raise connection_error(e, where) from e


def causes_of(exc: BaseException) -> Iterator[BaseException]:
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


def _loaded(module: str, *names: str) -> tuple[type, ...]:
    """Exception classes of ``module`` if it is imported (if not, none of them was raised)."""
    mod = sys.modules.get(module)
    return tuple(getattr(mod, n) for n in names) if mod is not None else ()


def connection_error(exc: BaseException, where: str) -> LXDError:
    """Classify a failure to talk to ``where`` at all."""
    causes = list(causes_of(exc))
    tls = (ssl.SSLError, *_loaded("requests.exceptions", "SSLError"), *_loaded("urllib3.exceptions", "SSLError"))
    timeout = (TimeoutError, *_loaded("requests.exceptions", "Timeout"))
    for e in causes:
        if isinstance(e, PermissionError):
            return LXDPermissionDenied(f"permission denied opening LXD at {where}: {e}")
    for e in causes:
        if isinstance(e, tls):
            return LXDUntrustedServer(f"TLS with LXD at {where} refused: {e}")
    for e in causes:
        if isinstance(e, timeout):
            return LXDUnreachable(f"LXD unreachable at {where}: timed out")
    for e in causes:
        if isinstance(e, (ConnectionRefusedError, FileNotFoundError)):
            return LXDUnreachable(f"LXD unreachable at {where}: {e.strerror or e}")
    return LXDUnreachable(f"LXD unreachable at {where}: {exc}")


def _is_single_self_signed(path: Path) -> bool:
    """True for a file holding one self-signed certificate (LXD's server.crt), which is
    pinned; anything else is used as a CA bundle."""
    from cryptography import x509
    try:
        certs = x509.load_pem_x509_certificates(path.read_bytes())
    except (OSError, ValueError):
        return False
    return len(certs) == 1 and certs[0].issuer == certs[0].subject
