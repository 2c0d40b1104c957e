"""``mount``: browse every backup through FUSE."""

from __future__ import annotations

from pathlib import Path

import click

from dedupe import api
from dedupe.cli.common import common
from dedupe.cli.common import ctx as _ctx


@click.command()
@click.argument("mountpoint", type=click.Path(path_type=Path))
@click.option("--daemon", is_flag=True, help="Go to the background once mounted (default: stay in the foreground).")
@click.option("--debug", is_flag=True, help="Log every FUSE request (foreground only).")
@common
def mount(mountpoint: Path, daemon: bool, debug: bool, repo: str | None, as_json: bool | None,
          quiet: bool | None) -> None:
    """Mount the repository read-only at MOUNTPOINT: by-id/<id>/ and
    by-group/<group>/<time>/ (and latest). Ctrl-C or umount ends it."""
    c = _ctx(repo, as_json, quiet)
    r = c.open()

    def ready() -> None:
        if not daemon and not c.quiet and not c.json:
            click.echo(f"dedupe: serving {c.location()} at {mountpoint}; Ctrl-C or umount {mountpoint} ends it",
                       err=True)

    api.mount(r, mountpoint, foreground=not daemon, debug=debug, on_ready=ready)


COMMANDS = (mount,)
