"""The LXD commands: ``backup lxd`` and the LXD branch of ``restore`` (``--to-lxd``).

Thin: options in, ``dedupe.lxd`` (the LXD backup run, restores into LXD) called,
results printed. The LXD modules (pylxd, requests) are imported inside the functions,
so that the other commands start without them.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from dedupe import api
from dedupe.cli.common import (
    Context,
    LXDConnection,
    common,
    ctx,
    backup_options,
    human,
    read_new,
    lxd_connection_options,
    warn_exit,
    write_metrics,
)
from dedupe.lxd.kinds import KINDS

if TYPE_CHECKING:  # the LXD modules (pylxd, requests) load only when an LXD command runs
    from dedupe.lxd.backup import LXDRunResult
    from dedupe.lxd.restore import RestoredObject
    from dedupe.repository import Repository
    from dedupe.lxd.api.client import LXDClient


def connect(connection: LXDConnection) -> LXDClient:
    """The local socket, or ``--remote`` over HTTPS with ``--cert``/``--key``, the
    server's certificate pinned with ``--server-cert`` (else the system CAs, or a
    certificate lxc accepted before)."""
    from dedupe.lxd.api.client import LXDClient
    return LXDClient.connect(connection.remote, connection.cert, connection.key,
                             verify=connection.server_cert or True)


def _kinds(only: str | None) -> frozenset[str] | None:
    if not only:
        return None
    kinds = frozenset(k.strip() for k in only.split(",") if k.strip())
    unknown = sorted(kinds - set(KINDS))
    if unknown or not kinds:
        raise click.BadParameter(f"{', '.join(unknown) or only!r}: choose from {', '.join(KINDS)}", param_hint="--only")
    return kinds


def _run_text(result: LXDRunResult) -> str:
    s = result.server
    lines = [f"run {result.run[:12]}  server {s['server_name']} (LXD {s['version']}) at {s['endpoint']}"]
    for o in result.objects:
        if o.error is not None:
            lines.append(f"  {'FAILED':<12}  {o.group}: {o.error}")
        else:
            via = f" (via {o.via})" if o.via else ""
            lines.append(f"  {o.backup_id[:12] if o.backup_id else '':<12}  {o.group}  {read_new(o.size, o.new_stored)}"
                         f"{via}" + (f" ({o.reason})" if o.reason else ""))
        if o.note:
            lines.append(f"  {'':<12}  note: {o.note}")
    ok = [o for o in result.objects if o.error is None]
    lines.append(f"{len(ok)} of {len(result.objects)} objects backed up: "
                 f"{read_new(sum(o.size for o in ok), sum(o.new_stored for o in ok))}")
    lines += [f"deleted leftover server-side backup {b}" for b in result.stale_deleted]
    return "\n".join(lines)


@click.command("lxd")
@click.argument("names", nargs=-1, metavar="[NAMES]...")
@click.option("--all", "all_instances", is_flag=True, help="All instances (the default without NAMES).")
@click.option("--project", metavar="P", help="Only this LXD project (default: all projects).")
@click.option("--only", metavar="KINDS", help=f"Only these kinds, comma-separated: {','.join(KINDS)}.")
@click.option("--instance-only", is_flag=True, help="Leave the snapshots of instances and volumes out.")
@click.option("--consistent", type=click.Choice(["none", "freeze"]), default="none", show_default=True,
              help="freeze: freeze running instances while they are read (direct on dir: the walk; "
                   "btrfs: the snapshot; export: while LXD writes its backup).")
@click.option("--via", type=click.Choice(["auto", "export", "direct"]), default="auto", show_default=True,
              help="How instances and volumes are read: straight from a local dir or btrfs pool (direct), "
                   "through LXD's backup export, or direct where possible (auto).")
@click.option("--rescan-snapshots", is_flag=True,
              help="Direct reads: walk every snapshot again, also those unchanged since the previous "
                   "backup (by default taken over from it: LXD snapshots do not change).")
@lxd_connection_options
@backup_options
@common
def backup_lxd_cmd(names: tuple[str, ...], all_instances: bool, project: str | None, only: str | None,
                   instance_only: bool, consistent: str, via: str, rescan_snapshots: bool, host: str | None,
                   compression: int, remote: str | None, cert: Path | None,
                   key: Path | None, server_cert: Path | None, repo: str | None, as_json: bool | None,
                   quiet: bool | None) -> None:
    """Back up an LXD server, one backup per object, all in one run: instances and
    custom volumes (with their snapshots), images, config records (profiles,
    networks, network ACLs, network zones, projects, storage pools, trusted
    certificates, server config) and the database. NAMES narrows it to those
    instances with the custom volumes they attach, volumes named pool/volume, and
    the config records; a name that matches nothing is an error. Groups are lxd/<project>/<kind>/<name>
    and lxd/global/<kind>/<name>. If some objects fail, the others are still
    backed up and the exit code is 69."""
    if names and all_instances:
        raise click.UsageError("give instance NAMES or --all, not both")
    c = ctx(repo, as_json, quiet)
    from dedupe.lxd.backup import backup_lxd
    from dedupe.lxd.source.plan import LXDSelection
    selection = LXDSelection(tuple(names), project, _kinds(only), instance_only, consistent, via, rescan_snapshots)
    r = c.open()
    with connect(LXDConnection(remote, cert, key, server_cert)) as client:
        result = backup_lxd(r, client, selection, c.progress(), host=host, level=compression)
    api.record_run(r, {**result.to_json(), "host": host or result.server.get("server_name")})
    c.out(result.to_json(), lambda: _run_text(result))
    warnings = write_metrics(r)
    if result.failures:
        for w in warnings:
            click.echo(f"dedupe: warning: {w}", err=True)
    result.raise_for_failures()
    warn_exit(c, warnings, "backup")


BACKUP_COMMANDS = (backup_lxd_cmd,)  # under ``dedupe backup``


def _restored_text(objects: list[RestoredObject], endpoint: str) -> str:
    lines = []
    for o in objects:
        if o.error is not None:
            lines.append(f"FAILED {o.describe()}: {o.error}")
        else:
            lines.append(f"{o.action} {o.describe()} (backup {o.backup_id[:12]}) on {endpoint}")
        lines += [f"  note: {w}" for w in [*o.warnings, *o.notes]]
        lines += [f"  LXD's recovery also brought back {a}" for a in o.also]
    return "\n".join(lines) or "nothing to restore"


def restore_to_lxd(c: Context, repo: Repository, *, backup_id: str | None, run: str | None, as_name: str | None,
                   project: str | None, pool: str | None, force: bool, with_deps: bool, recover: bool,
                   connection: LXDConnection, yes: bool = False, start: bool | None = None,
                   keep_identity: bool = False) -> None:
    """The ``--to-lxd`` branch of ``dedupe restore``."""
    if yes and not recover:
        raise click.UsageError("--yes goes with --recover")
    if keep_identity and not as_name:
        raise click.UsageError("--keep-identity goes with --as (a copy under a new name)")
    if run is not None and (as_name or with_deps or recover):
        raise click.UsageError("--as, --with-deps and --recover go with a backup ID, not --run")
    from dedupe.lxd.recover import recover_instance
    from dedupe.lxd.restore import RestoreOptions, restore_backup
    from dedupe.lxd.restore_run import restore_run
    from dedupe.lxd.stored import lxd_meta
    opts = RestoreOptions(as_name=as_name, project=project, pool=pool, force=force, with_deps=with_deps, yes=yes,
                          start=start, keep_identity=keep_identity)
    info = None
    if backup_id is not None:
        info = api.get_backup(repo, backup_id)
        lxd_meta(info)  # not an LXD backup: say so before connecting
    whole_run = None
    with connect(connection) as client:
        endpoint = client.endpoint
        if info is None:
            assert run is not None
            whole_run = restore_run(repo, client, run, opts, c.progress())
            objects = whole_run.objects
        elif recover:
            objects = recover_instance(repo, client, info, opts)
        else:
            objects = restore_backup(repo, client, info, opts, c.progress())
    c.out({"restored": [o.to_json() for o in objects]}, lambda: _restored_text(objects, endpoint))
    if whole_run is not None:
        whole_run.raise_for_failures()
    # a repaired backup (FORMAT.md 8.4) restores into LXD too, with zeros where pieces were
    # lost: warn and exit 3, as every other restore target does
    written = dict.fromkeys(o.backup_id for o in objects if o.action not in ("failed", "skipped") and o.backup_id)
    warnings = [w for w in (api.repaired_warning(repo, b) for b in written) if w]
    warn_exit(c, warnings + ([w for o in objects for w in o.warnings] if recover else []), "restore")


def restore_to_instance(c: Context, repo: Repository, *, backup_id: str, instance: str, paths: list[str],
                        target: str | None, force: bool, snapshot: str | None, project: str | None,
                        connection: LXDConnection) -> None:
    """The ``--to-instance`` branch of ``dedupe restore``."""
    from dedupe.lxd.restore_files import restore_to_instance as write_files
    info = api.get_backup(repo, backup_id)
    with connect(connection) as client:
        res = write_files(repo, client, info, instance, paths, target=target, force=force, snapshot=snapshot,
                          project=project)
    c.out(res.to_json(), lambda: f"wrote {res.written} entries ({human(res.bytes)}) into instance {instance}"
          + (f", replacing {res.replaced}" if res.replaced else "") + " (verified)")
    warn_exit(c, res.warnings, "restore")
