"""Requests to LXD and what comes back: pylxd's raw API nodes (requests underneath),
LXD's error answers as typed errors naming the object, sync and async answers, and
waiting for background operations (docs/lxd.md section 1).

On the local socket, plain GETs of records (``_get``/``_list``) go through
``SocketGets`` instead, and pylxd (with requests) is only imported and connected when
something else is asked: a direct backup never needs it (issue #14 item 7)."""

from __future__ import annotations

import http.client
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Literal, Self
from urllib.parse import quote, urlencode

from dedupe.lxd.api.connect import causes_of, connection_error
from dedupe.lxd.api.socket_gets import SocketGets, lxd_message
from dedupe.lxd.errors import (
    LXDError,
    LXDNotFound,
    LXDOperationFailed,
    LXDPermissionDenied,
    LXDStreamBroken,
    LXDUnreachable,
)
from dedupe.lxd.api.records import Project, Record
from dedupe.lxd.api.uploads import UploadSource, chunks

if TYPE_CHECKING:
    import pylxd
    import requests

OPERATION_WAIT_SECONDS: Final = 30  # docs/lxd.md section 1 (bounded waits)

# Operation status codes below 200 mean "not finished" (created, started, running, ...).
_STATUS_SUCCESS: Final = 200

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
    return lxd_message(data, response.reason, response.status_code)




class Transport:
    """One connection to one LXD server: raw requests, errors, operations. The
    methods for each kind of object are mixins over it (``LXDClient`` gathers them)."""

    _gets: SocketGets | None = None  # plain GETs on the local socket without pylxd

    def __init__(
        self, client: pylxd.Client | Callable[[], pylxd.Client], endpoint: str, project: str,
        socket_path: Path | None, gets: SocketGets | None = None,
    ) -> None:
        """``client``: pylxd's client, or what makes it when it is first needed (then
        ``gets`` answers the plain GETs until something else is asked)."""
        self._client = client
        self._gets = gets
        self.endpoint = endpoint  # "unix:/var/lib/lxd/unix.socket" or "https://host:8443"
        self.project = project
        self.socket_path = socket_path
        self._root_node: Any = None

    @property
    def _pylxd(self) -> pylxd.Client:
        if callable(self._client):
            self._client = self._client()
        return self._client

    @property
    def _root(self) -> Any:
        if self._root_node is None:
            api = self._pylxd.api
            # /internal/* is beside /1.0, so build a node at the root with pylxd's own class.
            root = api._api_endpoint[: -len("/1.0")]
            self._root_node = type(api)(root, api.session, timeout=api._timeout)
        return self._root_node

    def close(self) -> None:
        if self._gets is not None:
            self._gets.close()
        if not callable(self._client):
            self._client.api.session.close()

    def __enter__(self) -> Self:
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
        import pylxd.exceptions
        import requests
        import urllib3.exceptions
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
            if data is not None and any(isinstance(c, cut) for c in causes_of(e)):
                # LXD hung up while we were still sending (it refused the upload early)
                raise LXDStreamBroken(f"LXD cut the upload {where}: {e}") from e
            raise connection_error(e, f"{self.endpoint} ({where})") from e

    def _api_error(self, response: requests.Response, where: str, segs: list[str]) -> LXDError:
        return self._error_for(response.status_code, _lxd_message(response), where, segs)

    def _error_for(self, status: int, message: str, where: str, segs: list[str]) -> LXDError:
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
        if self._gets is not None:
            return self._socket_get(["1.0", *segments], project, params)
        return self._sync("GET", ["1.0", *segments], project=project, params=params)

    def _socket_get(self, segs: list[str], project: Project | Literal[False], params: dict[str, Any] | None) -> Any:
        """``_get`` through ``SocketGets``: the same request, answer and errors as pylxd's."""
        assert self._gets is not None
        query = dict(params or {})
        if project is not False:
            query["project"] = self._project(project)
        path = "/" + "/".join(quote(seg, safe="") for seg in segs)
        where = f"GET /{'/'.join(segs)}" + (f"?project={query['project']}" if "project" in query else "")
        try:
            status, reason, body = self._gets.get(path + ("?" + urlencode(query) if query else ""))
        except (OSError, http.client.HTTPException) as e:
            raise connection_error(e, f"{self.endpoint} ({where})") from e
        if status != _STATUS_SUCCESS or not isinstance(body, dict) or body.get("type") == "error":
            raise self._error_for(status, lxd_message(body, reason, status), where, segs)
        if body.get("type") == "async":
            return self.wait_operation(body["operation"], where, project=project)
        return body.get("metadata")

    def _list(self, *segments: str, project: Project | Literal[False] = None) -> list[Record]:
        result = self._get(*segments, project=project, params={"recursion": 1})
        return list(result or [])

    def _upload(
        self, segs: list[str], source: UploadSource, headers: dict[str, str], project: Project
    ) -> Record:
        """POST a streamed body (chunked transfer encoding) and wait for the operation."""
        return dict(
            self._sync("POST", segs, project=project, data=chunks(source), headers=headers) or {}
        )

    def wait_operation(
        self, operation: str, what: str = "", project: Project | Literal[False] = None
    ) -> Record:
        """Wait for an operation (its id or ``/1.0/operations/<id>`` URL) to finish,
        looping on ``wait?timeout=30``; returns its record or raises
        ``LXDOperationFailed`` with LXD's err text."""
        import requests
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
                if not any(isinstance(c, requests.exceptions.ReadTimeout) for c in causes_of(e)):
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
