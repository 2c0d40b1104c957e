"""``backup stream|tar|dir`` (``backup lxd`` is ``dedupe.lxd.cli``'s)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from dedupe import api
from dedupe.cli.common import Context, backup_options, common, read_new, write_metrics
from dedupe.cli.common import ctx as _ctx
from dedupe.cli.common import warn_exit as _warn_exit

@click.group()
def backup() -> None:
    """Store a backup (of a stream, a tar, a directory, or LXD)."""


def _backup_summary(c: Context, repo: Any, result: api.BackupResult) -> None:
    info = api.BackupInfo(result.id, result.manifest)
    j = info.to_json()
    j["warnings"] = result.warnings
    c.out(j, lambda: f"backup {j['short_id']}  {j['group']}  {read_new(j['size'], j['new_stored'])}")
    _warn_exit(c, result.warnings + write_metrics(repo), "backup")


def _open_input(source: str) -> Any:
    if source == "-":
        return sys.stdin.buffer
    try:
        return open(source, "rb")
    except OSError as e:
        from dedupe.errors import SourceError
        raise SourceError(f"{source}: cannot read ({e.strerror})") from None


@backup.command("stream")
@click.argument("group")
@click.argument("source", default="-", metavar="[FILE|-]")
@backup_options
@common
def backup_stream_cmd(group: str, source: str, host: str | None, compression: int, repo: str | None,
                      as_json: bool | None, quiet: bool | None) -> None:
    """Store a byte stream (a file, or stdin with -) as one backup of GROUP."""
    c = _ctx(repo, as_json, quiet)
    r = c.open()
    f = _open_input(source)
    with f:
        _backup_summary(c, r, api.do_backup_stream(r, group, f, c.progress(), host=host, level=compression))


@backup.command("tar")
@click.argument("group")
@click.argument("source", default="-", metavar="[FILE|-]")
@backup_options
@common
def backup_tar_cmd(group: str, source: str, host: str | None, compression: int, repo: str | None,
                   as_json: bool | None, quiet: bool | None) -> None:
    """Store a tar stream member by member (restores byte for byte)."""
    c = _ctx(repo, as_json, quiet)
    r = c.open()
    f = _open_input(source)
    with f:
        _backup_summary(c, r, api.do_backup_tar(r, group, f, c.progress(), host=host, level=compression))


@backup.command("dir")
@click.argument("group")
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--no-files-cache", is_flag=True, help="Read every file, even unchanged ones.")
@click.option("--one-file-system", "-x", is_flag=True, help="Do not cross into other file systems.")
@click.option("--exclude", "-e", "exclude", multiple=True, metavar="PATTERN",
              help="Leave out paths matching PATTERN (relative to PATH; '*', '?', '[...]', '**'; "
                   "a leading '/' anchors it at PATH). Repeatable.")
@click.option("--exclude-from", multiple=True, metavar="FILE", type=click.Path(path_type=Path),
              help="Read exclude patterns from FILE, one a line ('#' starts a comment). Repeatable.")
@click.option("--exclude-caches", is_flag=True,
              help="Leave out the contents of directories holding a CACHEDIR.TAG (https://bford.info/cachedir/).")
@backup_options
@common
def backup_dir_cmd(group: str, path: Path, no_files_cache: bool, one_file_system: bool, exclude: tuple[str, ...],
                   exclude_from: tuple[Path, ...], exclude_caches: bool, host: str | None, compression: int,
                   repo: str | None, as_json: bool | None, quiet: bool | None) -> None:
    """Store a directory tree with all its metadata (symlinks are not followed)."""
    c = _ctx(repo, as_json, quiet)
    excludes = api.exclude_patterns(exclude, exclude_from)  # a bad one is an error before the repository is opened
    r = c.open()
    _backup_summary(c, r, api.do_backup_dir(r, group, path, c.progress(), use_files_cache=not no_files_cache,
                                            one_file_system=one_file_system, excludes=excludes,
                                            exclude_caches=exclude_caches, host=host, level=compression))


COMMANDS = (backup,)
