"""What the repository holds: ``list``, ``show``, ``ls`` and ``diff``."""

from __future__ import annotations

import datetime as dt
from typing import Any

import click

from dedupe import api
from dedupe.cli.common import common, human
from dedupe.cli.common import ctx as _ctx
from dedupe.cli.common import warn_exit as _warn_exit

def _when(time_ns: int) -> str:
    return dt.datetime.fromtimestamp(time_ns / 1e9).strftime("%Y-%m-%d %H:%M:%S")


@click.command("list")
@click.option("--group", "-g", help="Only this group (and groups below it).")
@click.option("--run", "run", metavar="RUN", help="Only the backups of this run (id prefix).")
@common
def list_cmd(group: str | None, run: str | None, repo: str | None, as_json: bool | None, quiet: bool | None) -> None:
    """List backups. NEW is the stored bytes each backup added (what its run reported as new)."""
    c = _ctx(repo, as_json, quiet)
    r = c.open()
    if run is not None:
        run = api.get_run(r, run).run  # an unknown or ambiguous run is an error, not an empty list
    warnings: list[str] = []
    infos = api.list_backups(r, group, run, lambda name, e: warnings.append(f"backup {name[:12]} left out: {e}"))
    rows = [i.to_json() for i in infos]

    def text() -> str:
        if not rows:
            return "no backups"
        width = max(4, *(len(j["host"]) for j in rows))
        header = (f"{'ID':<12}  {'TIME':<19}  {'KIND':<6}  {'SIZE':>10}  {'NEW':>10}  {'STORED':>10}  "
                  f"{'HOST':<{width}}  {'RUN':<12}  GROUP")
        lines = [header]
        for j in rows:
            lines.append(f"{j['short_id']:<12}  {_when(j['time_ns']):<19}  {j['kind']:<6}  {human(j['size']):>10}  "
                         f"{human(j['new_stored']):>10}  {human(j['stored_bytes']):>10}  {j['host']:<{width}}  "
                         f"{j['run'][:12]:<12}  {j['group']}" + (" (repaired)" if j["repaired"] else ""))
        return "\n".join(lines)

    c.out(rows, text)
    _warn_exit(c, warnings, "list")


def _run_text(j: dict[str, Any]) -> str:
    lines = [f"run:           {j['run']}", f"time:          {_when(j['time_ns'])} ({j['time']})",
             f"hosts:         {', '.join(j['hosts'])}",
             f"backups:       {len(j['backups'])} ({human(j['size'])} original, {human(j['new_stored'])} new)"]
    for b in j["backups"]:
        lines.append(f"  {b['short_id']:<12}  {human(b['size']):>10}  {human(b['new_stored']):>10} new  {b['group']}")
    lines += [f"  {'FAILED':<12}  {f['group']}: {f['error']}" for f in j["failed"]]
    return "\n".join(lines)


@click.command()
@click.argument("backup_id")
@common
def show(backup_id: str, repo: str | None, as_json: bool | None, quiet: bool | None) -> None:
    """Show one backup, or one run (given a run id: its backups)."""
    c = _ctx(repo, as_json, quiet)
    found = api.get_backup_or_run(c.open(), backup_id)
    j = found.to_json()
    if isinstance(found, api.RunInfo):
        c.out(j, lambda: _run_text(j))
        return

    def text() -> str:
        return "\n".join([
            f"id:            {j['id']}", f"group:         {j['group']}", f"kind:          {j['kind']}",
            f"time:          {_when(j['time_ns'])} ({j['time']})", f"host:          {j['host']}",
            f"run:           {j['run']}", f"original size: {human(j['size'])} ({j['size']} bytes)",
            f"new:           {human(j['new_stored'])} (stored bytes it added to the repository)",
            f"stored size:   {human(j['stored_bytes'])} ({j['chunks']} chunks, {j['items']} items)",
            *([f"blake3:        {j['blake3']}"] if j["blake3"] else []),
            *_repaired_lines(j["repaired"]),
            *_lxd_lines(j["meta"].get("lxd")),
        ])

    c.out(j, text)


def _repaired_lines(r: dict[str, Any] | None) -> list[str]:
    """What ``show`` says of a backup ``repair backups`` rewrote (FORMAT.md 8.4)."""
    if r is None:
        return []
    lines = [f"repaired:      from {str(r['of'])[:12]} at {_when(r['time_ns'] or 0)}: {len(r['lost'])} lost piece(s) "
             f"are zeros" + (f", {r['lost_items']} item(s) missing" if r["lost_items"] else "")]
    lines += [f"  zeros:       {path or '(stream)'} bytes {off}..{off + n}" for path, off, n in r["lost"][:20]]
    if len(r["lost"]) > 20:
        lines.append(f"  ... and {len(r['lost']) - 20} more (--json lists them all)")
    return lines


def _lxd_lines(meta: object) -> list[str]:
    """What ``show`` says of an LXD object: which one, how it was read and how consistent."""
    if not isinstance(meta, dict) or "kind" not in meta:
        return []
    where = f" in project {meta['project']}" if meta.get("project") else ""
    lines = [f"lxd object:    {meta['kind']} {meta.get('name') or ''}{where}"]
    if meta.get("via"):
        lines.append(f"read via:      {meta['via']}" + (f" ({meta['driver']} pool {meta.get('pool', '')})"
                                                         if meta.get("driver") else ""))
    if meta.get("consistency"):
        lines.append(f"consistency:   {meta['consistency']}")
    if meta.get("snapshots"):
        lines.append(f"snapshots:     {', '.join(meta['snapshots'])}")
    if meta.get("attached_to"):
        lines.append(f"why:           {meta['attached_to']}")
    server = meta.get("server") or {}
    if server:
        lines.append(f"lxd server:    {server.get('server_name', '')} (LXD {server.get('version', '')}) "
                     f"at {server.get('endpoint', '')}")
    if meta.get("snapshots_reused"):
        lines.append(f"taken over:    {', '.join(meta['snapshots_reused'])} (unchanged since the previous backup)")
    return lines


snapshot_option = click.option(
    "--snapshot", metavar="NAME", help="LXD backups: that snapshot's version of the instance paths.")
host_ids_option = click.option(
    "--numeric-host-ids", "host_ids", is_flag=True,
    help="LXD backups: owners as the host's disk holds them (shifted), not as the instance sees them.")


@click.command("ls")
@click.argument("backup_id")
@click.argument("paths", nargs=-1)
@snapshot_option
@host_ids_option
@common
def ls_cmd(backup_id: str, paths: tuple[str, ...], snapshot: str | None, host_ids: bool, repo: str | None,
           as_json: bool | None, quiet: bool | None) -> None:
    """List the entries of a tar or directory backup (optionally below PATHS). For an LXD
    instance or volume backup, PATHS as the instance sees them (/etc/hosts), or raw
    backup/... entry paths."""
    c = _ctx(repo, as_json, quiet)
    entries = api.ls(c.open(), backup_id, list(paths) or None, snapshot, host_ids)
    c.out([api.entry_json(e) for e in entries], lambda: "\n".join(api.entry_line(e) for e in entries))


@click.command("diff")
@click.argument("old_id")
@click.argument("new_id")
@click.argument("paths", nargs=-1)
@snapshot_option
@host_ids_option
@common
def diff_cmd(old_id: str, new_id: str, paths: tuple[str, ...], snapshot: str | None, host_ids: bool,
             repo: str | None, as_json: bool | None, quiet: bool | None) -> None:
    """Paths added (+), removed (-) and changed (M) from OLD_ID to NEW_ID (optionally
    below PATHS; LXD backups as for ls)."""
    c = _ctx(repo, as_json, quiet)
    changes = api.diff(c.open(), old_id, new_id, list(paths) or None, snapshot, host_ids)
    mark = {"added": "+", "removed": "-", "changed": "M"}

    def line(ch: Any) -> str:
        sizes = {"added": f"{ch.new_size}", "removed": f"{ch.old_size}",
                 "changed": f"{ch.old_size} -> {ch.new_size}"}[ch.what]
        extra = f"  ({', '.join(ch.fields)})" if ch.fields else ""
        return f"{mark[ch.what]} {ch.path or '.'}  {sizes}{extra}"

    c.out([ch.to_json() for ch in changes], lambda: "\n".join(line(ch) for ch in changes) or "no changes")


COMMANDS = (list_cmd, show, ls_cmd, diff_cmd)
