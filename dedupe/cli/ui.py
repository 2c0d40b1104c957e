"""``dedupe ui``: serve the read-only web UI (``dedupe.ui``) for the repository.

Thin: parse ``--listen``, enforce the token rule, open the repository, hand over to
``dedupe.ui.app.serve``. The web stack (starlette, uvicorn, jinja2: the ``ui`` extra)
is imported only here, when the command runs.
"""

from __future__ import annotations

import sys

import click

from dedupe.cli.common import common, ctx
from dedupe.errors import DedupeError


class UIError(DedupeError):
    exit_code = 2


def parse_listen(listen: str) -> tuple[str, int]:
    """``HOST:PORT``, ``[IPv6]:PORT`` or ``:PORT`` (loopback)."""
    host, sep, port = listen.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise click.BadParameter(f"{listen!r}: use HOST:PORT, e.g. 127.0.0.1:8765", param_hint="--listen")
    return host.strip("[]") or "127.0.0.1", int(port)


def is_loopback(host: str) -> bool:
    import ipaddress
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@click.command("ui")
@click.option("--listen", default="127.0.0.1:8765", show_default=True, metavar="HOST:PORT",
              help="Where to serve. Anything but a loopback address needs --token.")
@click.option("--token", envvar="DEDUPE_UI_TOKEN", metavar="TOKEN",
              help="Every request must carry TOKEN ($DEDUPE_UI_TOKEN). Without it on a non-loopback "
                   "address, one is generated and printed.")
@click.option("--stale-hours", default=26.0, show_default=True, type=click.FloatRange(min=0),
              help="Highlight series whose newest backup is older than this.")
@click.option("--refresh", "refresh_s", default=10.0, show_default=True, type=click.FloatRange(min=0.2),
              help="Look for new and removed backups every this many seconds.")
@common
def ui_cmd(listen: str, token: str | None, stale_hours: float, refresh_s: float, repo: str | None,
           as_json: bool | None, quiet: bool | None) -> None:
    """Serve a read-only web UI of the repository: overview with charts, groups and
    series, LXD runs, each backup with a file browser, downloads and diffs, and
    /metrics for Prometheus. Loopback only unless --token."""
    host, port = parse_listen(listen)
    if not is_loopback(host) and not token:
        import secrets
        token = secrets.token_urlsafe(24)
    if token is not None and len(token) < 16:
        raise UIError("--token: use at least 16 characters (or leave it out on loopback)")
    try:
        from dedupe.ui.app import listen as bind, serve
        from dedupe.ui.model import RepoView
    except ImportError as e:
        raise UIError(f"dedupe ui needs the web UI's packages ({e.name} is missing): "
                      f"pip install 'dedupe[ui]'") from None
    c = ctx(repo, as_json, quiet)
    try:
        sock = bind(host, port)
    except OSError as e:
        raise UIError(f"--listen {listen}: cannot listen there ({e.strerror or e})") from None
    view = RepoView(c.open(), refresh_s=refresh_s)
    shown = f"[{host}]" if ":" in host else host
    url = f"http://{shown}:{port}/" + (f"?token={token}" if token else "")
    if not c.quiet:
        click.echo(f"dedupe ui: serving {c.location()} (read-only) at {url}")
        click.echo("dedupe ui: press Ctrl-C to stop")
        sys.stdout.flush()
    serve(view, sock, token, stale_hours)


COMMANDS = (ui_cmd,)
