"""The ``dedupe`` command line: thin wrappers over ``dedupe.api``; the only place that prints."""

from __future__ import annotations

import datetime as dt
import os
import sys
from pathlib import Path
from typing import Any

import click

from dedupe import api, keymgmt
from dedupe.cli.common import (
    Context,
    LXDConnection,
    access_options,
    common,
    backup_options,
    human,
    lxd_connection_options,
    other_passphrase,
    other_passphrase_options,
)
from dedupe.cli.common import ctx as _ctx
from dedupe.cli.common import warn_exit as _warn_exit
from dedupe.errors import DedupeError
from dedupe.memory import bound_malloc, fewer_gc_passes
from dedupe.passphrase import for_this, from_environment
from repo_format.errors import FormatError


class DedupeGroup(click.Group):
    """Turns errors into one line on stderr and the error's exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (DedupeError, FormatError) as e:
            _fail(str(e), e.exit_code)
        except KeyboardInterrupt:
            _fail("interrupted", 130)
        except BrokenPipeError:
            sys.stderr.close()
            os._exit(141)
        except (click.exceptions.Exit, click.ClickException, click.exceptions.Abort):
            raise
        except Exception as e:  # a bug: say what, without a traceback unless asked
            if os.environ.get("DEDUPE_DEBUG"):
                raise
            _fail(f"internal error: {type(e).__name__}: {e} (set DEDUPE_DEBUG=1 for a traceback)", 1)


def _fail(message: str, code: int) -> None:
    sys.stderr.write("\r\033[K" if sys.stderr.isatty() else "")
    click.echo(f"dedupe: {message}", err=True)
    sys.exit(code)


@click.group(cls=DedupeGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--repo", "-r", metavar="PATH", envvar="DEDUPE_REPO", help="The repository (default: $DEDUPE_REPO).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON only.")
@click.option("--quiet", "-q", is_flag=True, help="Print nothing but errors.")
@access_options
@click.version_option(package_name="dedupe")
@click.pass_context
def main(ctx: click.Context, repo: str | None, as_json: bool, quiet: bool) -> None:
    """Deduplicating backups of LXD servers.

    Encrypted repositories take their passphrase from --passphrase-file,
    --passphrase-command, $DEDUPE_PASSPHRASE (or its _FILE and _COMMAND forms), or a
    prompt. Options on the command line, before or after the command, win over the
    environment."""
    bound_malloc()
    fewer_gc_passes()
    ctx.obj = Context(repo, as_json, quiet)


@main.command()
@click.option("--encryption", type=click.Choice(["aes-256-gcm", "none"]), default="aes-256-gcm", show_default=True,
              help="Encrypt and authenticate everything stored (the key is sealed under a passphrase).")
@click.option("--copy-params-from", metavar="REPO",
              help="Use REPO's chunker parameters and id key, so that `dedupe copy` between them deduplicates.")
@other_passphrase_options("from", "--copy-params-from")
@common
def init(encryption: str, copy_params_from: str | None, repo: str | None, as_json: bool | None,
         quiet: bool | None) -> None:
    """Create a repository."""
    c = _ctx(repo, as_json, quiet)
    passphrase = from_environment(confirm=True, explicit=c.options.passphrase) if encryption != "none" else None
    r = api.init(c.location(), passphrase=passphrase, copy_params_from=copy_params_from, options=c.options,
                 copy_params_passphrase=other_passphrase("from"))
    c.out({"repository": c.location(), "repo_id": r.config.repo_id.hex(), "encryption": encryption},
          lambda: (f"created repository {c.location()} (id {r.config.repo_id.hex()[:12]}, encryption {encryption})"
                   + ("\nkeep the passphrase safe, and a copy of the key: dedupe key export FILE"
                      if passphrase is not None else "")))


@main.group()
def key() -> None:
    """Manage the key of an encrypted repository."""


@key.command("change-passphrase")
@common
def key_change_passphrase(repo: str | None, as_json: bool | None, quiet: bool | None) -> None:
    """Seal the key under a new passphrase ($DEDUPE_NEW_PASSPHRASE, or a prompt)."""
    c = _ctx(repo, as_json, quiet)
    r = c.open()
    new = os.environ.get("DEDUPE_NEW_PASSPHRASE")
    if new is None:
        if not sys.stdin.isatty():
            raise click.UsageError("set DEDUPE_NEW_PASSPHRASE or run on a terminal")
        first = click.prompt("new passphrase", hide_input=True, confirmation_prompt=True)
        new = first
    keymgmt.change_passphrase(r, os.fsencode(new))
    c.out({"changed": True}, lambda: "passphrase changed")


@key.command("export")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
@common
def key_export(path: Path, repo: str | None, as_json: bool | None, quiet: bool | None) -> None:
    """Write a copy of the key file to PATH (mode 0600; still needs the passphrase)."""
    c = _ctx(repo, as_json, quiet)
    keymgmt.export_key(c.open(), path)
    c.out({"exported": str(path)}, lambda: f"key exported to {path}; store it away from the repository")


@key.command("import")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@common
def key_import(path: Path, repo: str | None, as_json: bool | None, quiet: bool | None) -> None:
    """Put an exported key file back into a repository whose key file was lost."""
    c = _ctx(repo, as_json, quiet)
    keymgmt.import_key(c.storage(), path, for_this(c.options.passphrase))
    c.out({"imported": str(path)}, lambda: f"key imported from {path}")


@main.group()
def backup() -> None:
    """Store a backup (of a stream, a tar, a directory, or LXD)."""


def _backup_summary(c: Context, result: api.BackupResult) -> None:
    info = api.BackupInfo(result.id, result.manifest)
    j = info.to_json()
    j["warnings"] = result.warnings
    c.out(j, lambda: (f"backup {j['short_id']}  {j['group']}  {human(j['size'])} read, "
                      f"{human(j['new_bytes'])} new ({human(j['new_stored'])} stored)"))
    _warn_exit(c, result.warnings, "backup")


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
        _backup_summary(c, api.do_backup_stream(r, group, f, c.progress(), host=host, level=compression))


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
        _backup_summary(c, api.do_backup_tar(r, group, f, c.progress(), host=host, level=compression))


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
    from dedupe.sources.excludes import compile_pattern, read_exclude_file

    c = _ctx(repo, as_json, quiet)
    excludes = [*exclude, *(p for f in exclude_from for p in read_exclude_file(f))]
    for pattern in excludes:
        compile_pattern(pattern)  # a bad one is an error before the repository is opened
    _backup_summary(c, api.do_backup_dir(c.open(), group, path, c.progress(), use_files_cache=not no_files_cache,
                                         one_file_system=one_file_system, excludes=excludes,
                                         exclude_caches=exclude_caches, host=host, level=compression))


def _when(time_ns: int) -> str:
    return dt.datetime.fromtimestamp(time_ns / 1e9).strftime("%Y-%m-%d %H:%M:%S")


@main.command("list")
@click.option("--group", "-g", help="Only this group (and groups below it).")
@common
def list_cmd(group: str | None, repo: str | None, as_json: bool | None, quiet: bool | None) -> None:
    """List backups."""
    c = _ctx(repo, as_json, quiet)
    infos = api.list_backups(c.open(), group)
    rows = [i.to_json() for i in infos]

    def text() -> str:
        if not rows:
            return "no backups"
        width = max(4, *(len(j["host"]) for j in rows))
        header = (f"{'ID':<12}  {'TIME':<19}  {'KIND':<6}  {'SIZE':>10}  {'NEW':>10}  {'STORED':>10}  "
                  f"{'HOST':<{width}}  GROUP")
        lines = [header]
        for j in rows:
            lines.append(f"{j['short_id']:<12}  {_when(j['time_ns']):<19}  {j['kind']:<6}  {human(j['size']):>10}  "
                         f"{human(j['new_stored']):>10}  {human(j['stored_bytes']):>10}  {j['host']:<{width}}  {j['group']}")
        return "\n".join(lines)

    c.out(rows, text)


@main.command()
@click.argument("backup_id")
@common
def show(backup_id: str, repo: str | None, as_json: bool | None, quiet: bool | None) -> None:
    """Show one backup."""
    c = _ctx(repo, as_json, quiet)
    j = api.get_backup(c.open(), backup_id).to_json()

    def text() -> str:
        return "\n".join([
            f"id:            {j['id']}", f"group:         {j['group']}", f"kind:          {j['kind']}",
            f"time:          {_when(j['time_ns'])} ({j['time']})", f"host:          {j['host']}",
            f"run:           {j['run']}", f"original size: {human(j['size'])} ({j['size']} bytes)",
            f"new data:      {human(j['new_bytes'])} ({human(j['new_stored'])} stored)",
            f"stored size:   {human(j['stored_bytes'])} ({j['chunks']} chunks, {j['items']} items)",
            *([f"blake3:        {j['blake3']}"] if j["blake3"] else []),
        ])

    c.out(j, text)


@main.command()
@click.argument("backup_id", required=False)
@click.option("--to-file", "to_file", type=click.Path(dir_okay=False, path_type=Path), help="Write the stream here.")
@click.option("--stdout", "to_stdout", is_flag=True, help="Write the stream to standard output.")
@click.option("--to-dir", "to_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Restore the tree of a tar or directory backup into this directory.")
@click.option("--path", "paths", multiple=True, metavar="P", help="With --to-dir: only this path (repeatable).")
@click.option("--names", is_flag=True, help="With --to-dir: map owners by user/group name, not by number.")
@click.option("--to-lxd", "to_lxd", is_flag=True, help="Restore into LXD (an instance, volume, image or record).")
@click.option("--run", "run", metavar="RUN", help="With --to-lxd: everything from one backup run (id prefix).")
@click.option("--as", "as_name", metavar="NAME", help="With --to-lxd: restore under this name.")
@click.option("--project", metavar="P", help="With --to-lxd: into this LXD project.")
@click.option("--pool", metavar="P", help="With --to-lxd: into this storage pool.")
@click.option("--force", is_flag=True, help="With --to-lxd: replace what exists under that name.")
@click.option("--with-deps", is_flag=True, help="With --to-lxd: recreate missing profiles, networks, projects first.")
@click.option("--recover", is_flag=True, help="With --to-lxd: lay the files out in the pool and run LXD's recovery.")
@lxd_connection_options
@common
def restore(backup_id: str | None, to_file: Path | None, to_stdout: bool, to_dir: Path | None,
            paths: tuple[str, ...], names: bool, to_lxd: bool, run: str | None, as_name: str | None,
            project: str | None, pool: str | None, force: bool, with_deps: bool, recover: bool,
            remote: str | None, cert: Path | None, key: Path | None, server_cert: Path | None,
            repo: str | None, as_json: bool | None, quiet: bool | None) -> None:
    """Restore a backup: the original bytes (stream, tar; a PAX tar of a directory
    backup) with --to-file or --stdout, the tree with --to-dir, or the object inside
    LXD with --to-lxd. Everything is verified."""
    targets = [t for t in (to_file, to_stdout or None, to_dir, to_lxd or None) if t]
    if len(targets) != 1:
        raise click.UsageError("give exactly one of --to-file F, --stdout, --to-dir D or --to-lxd")
    if paths and not to_dir:
        raise click.UsageError("--path goes with --to-dir")
    lxd_only = {"--run": run, "--as": as_name, "--project": project, "--pool": pool, "--force": force,
                "--with-deps": with_deps, "--recover": recover, "--remote": remote}
    if not to_lxd and any(lxd_only.values()):
        raise click.UsageError(f"{', '.join(k for k, v in lxd_only.items() if v)} go(es) with --to-lxd")
    if (backup_id is None) == (run is None) and to_lxd:
        raise click.UsageError("give a backup ID or --run RUN")
    if backup_id is None and not to_lxd:
        raise click.UsageError("missing BACKUP_ID")
    c = _ctx(repo, as_json, quiet)
    r = c.open()
    if to_lxd:
        from dedupe.lxd.cli import restore_to_lxd
        restore_to_lxd(c, r, backup_id=backup_id, run=run, as_name=as_name, project=project, pool=pool,
                       force=force, with_deps=with_deps, recover=recover,
                       connection=LXDConnection(remote, cert, key, server_cert))
        return
    assert backup_id is not None
    if to_dir is not None:
        warnings: list[str] = []
        res = api.restore_dir(r, backup_id, to_dir, list(paths) or None, warnings.append, not names)
        c.out({"restored": str(to_dir), "entries": res.restored, "skipped": res.skipped,
               "bytes": res.bytes_written, "warnings": warnings},
              lambda: f"restored {res.restored} entries ({human(res.bytes_written)}) to {to_dir} (verified)")
        _warn_exit(c, warnings, "restore")
        return
    if to_stdout:
        if sys.stdout.isatty():
            raise click.UsageError("refusing to write a backup to a terminal; redirect --stdout")
        n = api.restore_stdout(r, backup_id, sys.stdout.buffer)
        sys.stdout.flush()
        return
    assert to_file is not None
    n = api.restore_file(r, backup_id, to_file, c.progress())
    c.out({"restored": str(to_file), "bytes": n}, lambda: f"restored {human(n)} to {to_file} (verified)")


@main.command("ls")
@click.argument("backup_id")
@click.argument("paths", nargs=-1)
@common
def ls_cmd(backup_id: str, paths: tuple[str, ...], repo: str | None, as_json: bool | None,
           quiet: bool | None) -> None:
    """List the entries of a tar or directory backup (optionally below PATHS)."""
    from dedupe.restore.browse import entry_json, entry_line
    c = _ctx(repo, as_json, quiet)
    entries = api.ls(c.open(), backup_id, list(paths) or None)
    c.out([entry_json(e) for e in entries], lambda: "\n".join(entry_line(e) for e in entries))


@main.command("diff")
@click.argument("old_id")
@click.argument("new_id")
@common
def diff_cmd(old_id: str, new_id: str, repo: str | None, as_json: bool | None, quiet: bool | None) -> None:
    """Paths added (+), removed (-) and changed (M) from OLD_ID to NEW_ID."""
    c = _ctx(repo, as_json, quiet)
    changes = api.diff(c.open(), old_id, new_id)
    mark = {"added": "+", "removed": "-", "changed": "M"}

    def line(ch: Any) -> str:
        sizes = {"added": f"{ch.new_size}", "removed": f"{ch.old_size}",
                 "changed": f"{ch.old_size} -> {ch.new_size}"}[ch.what]
        extra = f"  ({', '.join(ch.fields)})" if ch.fields else ""
        return f"{mark[ch.what]} {ch.path or '.'}  {sizes}{extra}"

    c.out([ch.to_json() for ch in changes], lambda: "\n".join(line(ch) for ch in changes) or "no changes")


@main.command("check")
@click.option("--read-data", is_flag=True, help="Also read every blob, decompress and re-hash it.")
@click.option("--read-data-subset", metavar="n/t|x%",
              help="Read only some packs: group n of t (t runs with n = 1..t read them all), or a random x%.")
@common
def check_cmd(read_data: bool, read_data_subset: str | None, repo: str | None, as_json: bool | None,
              quiet: bool | None) -> None:
    """Verify the repository's structure (and with --read-data, all data)."""
    subset = None
    if read_data_subset is not None:
        from dedupe.maintenance.check import DataSubset
        subset = DataSubset.parse(read_data_subset)  # a bad one is an error before the repository is opened
    c = _ctx(repo, as_json, quiet)
    reading = read_data or subset is not None
    report = api.run_check(c.open(), reading, c.progress(), subset)

    def text() -> str:
        lines = [f"checked {report.backups} backups, {report.packs} packs, {report.chunks} chunks"
                 + (f", read {human(report.bytes_read)} ({report.packs_read} of {report.packs} packs)"
                    if reading else "")]
        lines += [f"error: {e}" for e in report.errors]
        lines += [f"note: {n}" for n in report.notes]
        lines.append("repository OK" if report.ok else f"repository has {len(report.errors)} problem(s)")
        return "\n".join(lines)

    c.out(report.to_json(), text)
    if not report.ok:
        sys.exit(25)


def _register_extensions() -> None:
    """Commands that live in their own modules (LXD, maintenance)."""
    from dedupe.cli import copy as cli_copy, maintenance as cli_maintenance
    from dedupe.lxd import cli as cli_lxd
    cli_lxd.register(main, backup)
    cli_maintenance.register(main, backup)
    cli_copy.register(main, backup)


_register_extensions()

if __name__ == "__main__":
    main()
