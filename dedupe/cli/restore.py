"""``restore``: to a file, to standard output, to a directory, or into LXD."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from dedupe import api
from dedupe.cli.common import LXDConnection, common, human, lxd_connection_options
from dedupe.cli.common import ctx as _ctx
from dedupe.cli.common import warn_exit as _warn_exit

@click.command()
@click.argument("backup_id", required=False)
@click.option("--to-file", "to_file", type=click.Path(dir_okay=False, path_type=Path), help="Write the stream here (- for standard output, as --stdout).")
@click.option("--stdout", "to_stdout", is_flag=True, help="Write the stream to standard output.")
@click.option("--to-dir", "to_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Restore the tree of a tar or directory backup into this directory.")
@click.option("--path", "paths", multiple=True, metavar="P", help="With --to-dir: only this path (repeatable).")
@click.option("--snapshot", metavar="NAME",
              help="With --to-dir and an LXD backup: the paths as that snapshot holds them.")
@click.option("--numeric-host-ids", "host_ids", is_flag=True,
              help="With --to-dir and an LXD backup: owners as on the host's disk (shifted), not the instance's.")
@click.option("--names", is_flag=True, help="With --to-dir: map owners by user/group name, not by number.")
@click.option("--no-special", is_flag=True,
              help="With --to-dir, for backups you do not trust: no device nodes, no setuid/setgid bits, "
                   "no file capabilities.")
@click.option("--to-lxd", "to_lxd", is_flag=True, help="Restore into LXD (an instance, volume, image or record).")
@click.option("--to-instance", "to_instance", metavar="NAME",
              help="Write the --path files into this LXD instance (running or stopped) through LXD's file API.")
@click.option("--target", metavar="DIR", help="With --to-instance: put the files inside this directory.")
@click.option("--run", "run", metavar="RUN", help="With --to-lxd: everything from one backup run (id prefix).")
@click.option("--as", "as_name", metavar="NAME", help="With --to-lxd: restore under this name.")
@click.option("--project", metavar="P", help="With --to-lxd or --to-instance: into this LXD project.")
@click.option("--pool", metavar="P", help="With --to-lxd: into this storage pool.")
@click.option("--force", is_flag=True,
              help="With --to-lxd: replace what exists under that name; with --to-instance: existing files.")
@click.option("--with-deps", is_flag=True, help="With --to-lxd: recreate missing profiles, networks, projects first.")
@click.option("--recover", is_flag=True, help="With --to-lxd: lay the files out in the pool and run LXD's recovery.")
@click.option("--start/--no-start", "start", default=None,
              help="With --to-lxd: start the restored instance / leave it stopped (default: a replaced running "
                   "instance is started again).")
@click.option("--keep-identity", is_flag=True,
              help="With --as: keep the original's volatile.uuid, MAC addresses and cloud-init instance id.")
@click.option("--yes", is_flag=True, help="With --recover: also bring back the other unknown volumes of the pool.")
@lxd_connection_options
@common
def restore(backup_id: str | None, to_file: Path | None, to_stdout: bool, to_dir: Path | None,
            paths: tuple[str, ...], snapshot: str | None, host_ids: bool, names: bool, no_special: bool, to_lxd: bool,
            to_instance: str | None, target: str | None, run: str | None, as_name: str | None,
            project: str | None, pool: str | None, force: bool, with_deps: bool, recover: bool,
            start: bool | None, keep_identity: bool, yes: bool,
            remote: str | None, cert: Path | None, key: Path | None, server_cert: Path | None,
            repo: str | None, as_json: bool | None, quiet: bool | None) -> None:
    """Restore a backup: the original bytes (stream, tar; a PAX tar of a directory
    backup) with --to-file or --stdout, the tree with --to-dir, the object inside
    LXD with --to-lxd, or chosen files into an instance with --to-instance. Everything
    is verified."""
    if to_file == Path("-"):  # tar's and borg's convention; never a file named "-"
        if to_stdout:
            raise click.UsageError("--to-file - is --stdout: give one of them")
        to_file, to_stdout = None, True
    targets = [t for t in (to_file, to_stdout or None, to_dir, to_lxd or None, to_instance) if t]
    if run is not None and not to_lxd:
        raise click.UsageError(f"--run restores a whole run into LXD: add --to-lxd (to restore one backup of the "
                               f"run elsewhere, give its id: `dedupe list --run {run}` lists them)")
    if len(targets) != 1:
        raise click.UsageError("give exactly one of --to-file F, --stdout, --to-dir D, --to-lxd or --to-instance NAME")
    if paths and not (to_dir or to_instance):
        raise click.UsageError("--path goes with --to-dir or --to-instance")
    if (snapshot or host_ids) and not (to_dir or to_instance):
        raise click.UsageError("--snapshot and --numeric-host-ids go with --to-dir (or --to-instance)")
    if no_special and not to_dir:
        raise click.UsageError("--no-special goes with --to-dir (a tar written by --to-file or --stdout creates "
                               "nothing: its extractor decides)")
    if target and not to_instance:
        raise click.UsageError("--target goes with --to-instance")
    if to_instance:
        if not paths or backup_id is None:
            raise click.UsageError("--to-instance needs a backup ID and at least one --path")
        if host_ids or run or as_name or pool or with_deps or recover:
            raise click.UsageError("--to-instance takes --path, --target, --snapshot, --project, --force")
        c = _ctx(repo, as_json, quiet)
        from dedupe.lxd.cli import restore_to_instance
        restore_to_instance(c, c.open(), backup_id=backup_id, instance=to_instance, paths=list(paths),
                            target=target, force=force, snapshot=snapshot, project=project,
                            connection=LXDConnection(remote, cert, key, server_cert))
        return
    lxd_only = {"--run": run, "--as": as_name, "--project": project, "--pool": pool, "--force": force,
                "--with-deps": with_deps, "--recover": recover, "--yes": yes, "--start/--no-start": start is not None,
                "--keep-identity": keep_identity,
                "--remote": remote}
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
                       force=force, with_deps=with_deps, recover=recover, yes=yes, start=start,
                       keep_identity=keep_identity,
                       connection=LXDConnection(remote, cert, key, server_cert))
        return
    assert backup_id is not None
    repaired = api.repaired_warning(r, backup_id)  # a repaired backup restores with a warning, exit 3
    if to_dir is not None:
        warnings: list[str] = [repaired] if repaired else []
        res = api.restore_dir(r, backup_id, to_dir, list(paths) or None, warnings.append, not names, snapshot,
                              host_ids, no_special)
        c.out({"restored": str(to_dir), "entries": res.restored, "skipped": res.skipped,
               "bytes": res.bytes_written, "warnings": warnings},
              lambda: f"restored {res.restored} entries ({human(res.bytes_written)}) to {to_dir} (verified)")
        _warn_exit(c, warnings, "restore")
        return
    if to_stdout:
        if sys.stdout.isatty():
            raise click.UsageError("refusing to write a backup to a terminal; redirect --stdout")
        api.restore_stdout(r, backup_id, sys.stdout.buffer)
        _warn_exit(c, [repaired] if repaired else [], "restore")
        return
    assert to_file is not None
    n = api.restore_file(r, backup_id, to_file, c.progress())
    c.out({"restored": str(to_file), "bytes": n}, lambda: f"restored {human(n)} to {to_file} (verified)")
    _warn_exit(c, [repaired] if repaired else [], "restore")


COMMANDS = (restore,)
