"""``dedupe ui``: a read-only web UI over one repository (Starlette, Jinja2, uvicorn).

Pages: overview (``/``), groups and series (``/groups``, ``/group?name=G``), ``backup
lxd`` runs (``/runs``), one backup (``/backup/ID``) with its file browser
(``/backup/ID/browse?path=P``), single-file download (``/backup/ID/file?path=P``) and
its diff against the previous backup of its group (``/backup/ID/diff``), and the
Prometheus metrics (``/metrics``). Nothing writes to the repository; the passphrase
stays in the process (only the unlocked repository handle is used).
"""

from __future__ import annotations

import datetime as dt
import json
import posixpath
import socket
import sys
import time
import traceback
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from dedupe import api, metrics
from dedupe.ui import pages
from dedupe.ui.guard import Guard
from dedupe.ui.model import LRU, RepoView
from dedupe.ui.tree import Tree

HERE = Path(__file__).parent


def human(n: int | float | None) -> str:
    if n is None:
        return "-"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def when(t: int | float | None, ns: bool = True) -> str:
    if not t:
        return "-"
    return dt.datetime.fromtimestamp(t / 1e9 if ns else t).strftime("%Y-%m-%d %H:%M")


def quoted(value: Any) -> str:
    """A URL query value; a name that is not UTF-8 keeps its bytes (``param`` reads it back)."""
    return quote(str(value).encode("utf-8", "surrogateescape"), safe="")


def param(request: Request, name: str, default: str = "") -> str:
    """A query parameter as ``quoted`` wrote it: bytes that are not UTF-8 come back as the
    surrogate escapes the backup's entry names carry."""
    pairs = parse_qsl(request.scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True,
                      encoding="utf-8", errors="surrogateescape")
    return next((v for k, v in pairs if k == name), default)


def age(seconds: float) -> str:
    seconds = max(0, int(seconds))
    if seconds < 3600:
        return f"{seconds // 60} min"
    if seconds < 86400 * 2:
        return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"
    return f"{seconds // 86400} days"


class UI:
    def __init__(self, view: RepoView, stale_hours: float = 26.0) -> None:
        self.view = view
        self.stale_hours = stale_hours
        self.env = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(),
                               trim_blocks=True, lstrip_blocks=True)
        self.env.filters.update(human=human, when=when, age=age, q=quoted,
                                basename=lambda p: posixpath.basename(p) or "/")
        self.env.globals.update(location=view.location, encrypted=view.encrypted)
        self.diffs: LRU[tuple[str, str], list[Any]] = LRU(4)

    def render(self, template: str, status: int = 200, **context: Any) -> HTMLResponse:
        html = self.env.get_template(template).render(now=time.time(), stale_hours=self.stale_hours, **context)
        # names that are not UTF-8 (carried with surrogateescape) go out as their bytes
        return HTMLResponse(html.encode("utf-8", "surrogateescape"), status)

    # -- pages --------------------------------------------------------------------------

    def overview(self, request: Request) -> Response:
        data = pages.overview(self.view)
        data["stale"] = [sr for g in pages.groups(self.view, self.stale_hours) for sr in g.series if sr.stale]
        charts = {"nightly": data["nightly"], "groups": data["group_chart"]}
        return self.render("overview.html", page="overview", d=data, charts=json.dumps(charts))

    def groups(self, request: Request) -> Response:
        ret = pages.retention(self.view)
        return self.render("groups.html", page="groups", rows=pages.groups(self.view, self.stale_hours),
                           policy=pages.describe_policy(ret["policy"]), policy_error=ret.get("error"))

    def group(self, request: Request) -> Response:
        name = param(request, "name")
        backups = self.view.snapshot.by_group.get(name)
        if backups is None:
            raise HTTPException(404, f"no group {name}")
        ret = pages.retention(self.view)
        return self.render("group.html", page="groups", name=name, backups=list(reversed(backups)),
                           decisions=ret["decisions"], policy=pages.describe_policy(ret["policy"]))

    def runs(self, request: Request) -> Response:
        every = pages.runs(self.view)
        try:
            number = max(1, int(request.query_params.get("page", "1")))
        except ValueError:
            number = 1
        shown = every[(number - 1) * pages.RUNS_PER_PAGE:number * pages.RUNS_PER_PAGE]
        return self.render("runs.html", page="runs", runs=shown, number=number, total=len(every),
                           more=number * pages.RUNS_PER_PAGE < len(every))

    def _backup(self, request: Request) -> api.BackupInfo:
        try:
            return self.view.backup(request.path_params["id"])
        except KeyError:
            raise HTTPException(404, f"no backup {request.path_params['id']}") from None

    def _tree(self, b: api.BackupInfo) -> Tree | None:
        if b.manifest.kind not in ("tar", "dir"):
            return None
        return self.view.trees.get(b.id, lambda: Tree.build(api.tree_entries(self.view.repo, b.manifest)))

    def backup(self, request: Request) -> Response:
        b = self._backup(request)
        tree = self._tree(b)
        start = tree.roots[0][1] if tree is not None and tree.roots else ""
        return self._backup_page(b, tree, start)

    def browse(self, request: Request) -> Response:
        b = self._backup(request)
        tree = self._tree(b)
        path = param(request, "path").strip("/")
        if tree is None or not tree.is_dir(path):
            raise HTTPException(404, f"no directory {path or '/'} in backup {b.id[:12]}")
        return self._backup_page(b, tree, path)

    def _backup_page(self, b: api.BackupInfo, tree: Tree | None, path: str) -> Response:
        j = b.to_json()
        lxd = b.manifest.meta.get("lxd") if isinstance(b.manifest.meta.get("lxd"), dict) else None
        crumbs, root = [], tree.root_of(path) if tree is not None else None
        if tree is not None:
            base = root[1] if root else ""
            parts = path[len(base):].strip("/").split("/") if path != base else []
            crumbs = [(root[0] if root else "/", base)]
            for i, part in enumerate(parts):
                crumbs.append((part, posixpath.join(base, *parts[:i + 1])))
        meta = {k: v for k, v in b.manifest.meta.items() if k != "lxd"}
        return self.render("backup.html", page="groups", b=b, j=j, lxd=lxd, tree=tree, path=path, crumbs=crumbs,
                           listing=tree.listing(path) if tree is not None else [],
                           previous=pages.previous_in_group(self.view, b),
                           lxd_json=json.dumps(lxd, indent=2, sort_keys=True, default=str) if lxd else "",
                           meta_json=json.dumps(meta, indent=2, sort_keys=True, default=str) if meta else "")

    def download(self, request: Request) -> Response:
        b = self._backup(request)
        tree = self._tree(b)
        path = param(request, "path").strip("/")
        found = tree.file(path) if tree is not None else None
        if found is None:
            raise HTTPException(404, f"no file {path} in backup {b.id[:12]}")
        entry, prefix = found
        name = posixpath.basename(path)
        return StreamingResponse(api.entry_content(self.view.repo, entry, prefix), media_type="application/octet-stream",
                                 headers={"content-disposition": f"attachment; filename*=UTF-8''{quoted(name)}",
                                          "content-length": str(entry.size)})

    def diff(self, request: Request) -> Response:
        b = self._backup(request)
        prev = pages.previous_in_group(self.view, b)
        against = request.query_params.get("against")
        if against:
            try:
                prev = self.view.backup(against)
            except KeyError:
                raise HTTPException(404, f"no backup {against}") from None
        changes: list[Any] = []
        if prev is not None and b.manifest.kind in ("tar", "dir") and prev.manifest.kind in ("tar", "dir"):
            changes = self.diffs.get((prev.id, b.id), lambda: api.diff(self.view.repo, prev.id, b.id))
        return self.render("diff.html", page="groups", b=b, prev=prev, changes=changes)

    def metrics(self, request: Request) -> Response:
        report = self.view.stats.report
        if report is None:
            return PlainTextResponse("# stats are being computed\n", 503)
        text = metrics.render(list(self.view.snapshot.backups), report, self.view.records("check"))
        return PlainTextResponse(text, media_type="text/plain; version=0.0.4")

    def error(self, request: Request, exc: Exception) -> Response:
        status = getattr(exc, "status_code", 500)
        if status >= 500:  # a bug or a damaged repository: the operator sees the traceback
            traceback.print_exception(exc, file=sys.stderr)
        detail = getattr(exc, "detail", None) or f"{type(exc).__name__}: {exc}"
        return self.render("error.html", status=status, status_code=status, detail=detail)


def create_app(view: RepoView, token: str | None = None, stale_hours: float = 26.0) -> Any:
    ui = UI(view, stale_hours)
    routes = [
        Route("/", ui.overview), Route("/groups", ui.groups), Route("/group", ui.group), Route("/runs", ui.runs),
        Route("/backup/{id}", ui.backup), Route("/backup/{id}/browse", ui.browse),
        Route("/backup/{id}/file", ui.download), Route("/backup/{id}/diff", ui.diff),
        Route("/metrics", ui.metrics), Route("/favicon.ico", lambda request: Response(status_code=204)),
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
    ]
    app = Starlette(routes=routes, exception_handlers={HTTPException: ui.error, Exception: ui.error})
    return Guard(app, token)


def listen(host: str, port: int) -> socket.socket:
    """The listening socket (bound before the repository is opened, so that a port in use
    is said at once); OSError if the address is not ours or taken."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(128)
    except OSError:
        sock.close()
        raise
    return sock


def serve(view: RepoView, sock: socket.socket, token: str | None, stale_hours: float) -> None:
    import uvicorn
    view.start()
    config = uvicorn.Config(create_app(view, token, stale_hours), log_level="warning", access_log=False,
                            server_header=False, lifespan="off")
    uvicorn.Server(config).run(sockets=[sock])
