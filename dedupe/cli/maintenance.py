"""Maintenance commands: check, prune, forget, protect, unprotect, gc, stats (thin wrappers)."""

from __future__ import annotations

import datetime as dt
import sys
from collections.abc import Callable
from typing import Any

import click

from dedupe import api
from dedupe.cli.common import common, human, metrics_file_option, warn_exit, write_metrics
from dedupe.cli.common import ctx as _ctx


def _percent(value: str) -> float:
    """``5%`` or ``5`` (percent), as a fraction."""
    try:
        f = float(value.strip().rstrip("%"))
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a percentage (e.g. 5%)") from None
    if not 0 <= f <= 100:
        raise click.BadParameter(f"{value!r} is not between 0% and 100%")
    return f / 100


def _when(time_ns: int) -> str:
    return dt.datetime.fromtimestamp(time_ns / 1e9).strftime("%Y-%m-%d %H:%M")


def _gc_options(f: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--max-unused", default="5%", show_default=True, metavar="PERCENT",
                        callback=lambda _ctx, _param, value: _percent(value),
                        help="Rewrite partly used packs until at most this much of the stored data is unused.")(f)


def _gc_text(r: Any, human: Callable[[int], str]) -> str:
    verb = "would free" if r.dry_run else "freed"
    return (f"gc {verb} {human(r.freed)}: {r.packs_deleted} pack(s) removed ({r.packs_repacked} rewritten into "
            f"{r.packs_written}), {r.packs_after} left ({human(r.bytes_after)}, {human(r.unused_bytes_after)} unused)"
            + (f"; kept {r.packs_kept_for_new_backups} pack(s) for backups made meanwhile"
               if r.packs_kept_for_new_backups else "")
            + (f"; aborted {r.uploads_aborted} stale upload(s)" if r.uploads_aborted else ""))


def _open_unindexed(c: Any) -> Any:
    """The repository without its in-memory index: prune and gc read the index segment
    by segment themselves (their memory per chunk, benchmarks/RESULTS-gc.md)."""
    return c.open(load_index=False)


def _decision_lines(plan: Any) -> list[str]:
    lines, series = [], None
    for d in plan.decisions:
        if api.series_of(d.backup, plan.group_by) != series:
            series = api.series_of(d.backup, plan.group_by)
            lines.append(f"{api.describe_series(series)}:")
        why = ", ".join(d.reasons)
        lines.append(f"  {'keep  ' if d.keep else 'remove'}  {d.backup.id[:12]}  {_when(d.backup.time_ns)}"
                     + (f"  {why}" if why else ""))
    return lines


@click.command("check")
@click.option("--read-data", is_flag=True, help="Also read every blob, decompress and re-hash it.")
@click.option("--read-data-subset", metavar="n/t|x%",
              help="Read only some packs: group n of t (t runs with n = 1..t read them all), or a random x%.")
@metrics_file_option
@common
def check_cmd(read_data: bool, read_data_subset: str | None, repo: str | None, as_json: bool | None,
              quiet: bool | None) -> None:
    """Verify the repository's structure (and with --read-data, all data)."""
    subset = None
    if read_data_subset is not None:
        subset = api.parse_data_subset(read_data_subset)  # a bad one is an error before the repository is opened
    c = _ctx(repo, as_json, quiet)
    reading = read_data or subset is not None
    r = c.open()
    report = api.run_check(r, reading, c.progress(), subset)

    def text() -> str:
        lines = [f"checked {report.backups} backups, {report.packs} packs, {report.chunks} chunks"
                 + (f", read {human(report.bytes_read)} ({report.packs_read} of {report.packs} packs)"
                    if reading else "")]
        lines += [f"error: {e}" for e in report.errors]
        lines += [f"note: {n}" for n in report.notes]
        lines.append("repository OK" if report.ok else f"repository has {len(report.errors)} problem(s)")
        return "\n".join(lines)

    c.out(report.to_json(), text)
    warnings = write_metrics(r)
    if not report.ok:
        for w in warnings:
            click.echo(f"dedupe: warning: {w}", err=True)
        sys.exit(25)
    warn_exit(c, warnings, "check")


@click.command("prune")
@click.option("--keep-last", type=int, default=None, metavar="N", help="Keep the N newest backups.")
@click.option("--keep-hourly", type=int, default=None, metavar="N", help="Keep the newest backup of each of the last N hours that have one.")
@click.option("--keep-daily", type=int, default=None, metavar="N", help="... of each of the last N days that have one.")
@click.option("--keep-weekly", type=int, default=None, metavar="N", help="... of each of the last N ISO weeks.")
@click.option("--keep-monthly", type=int, default=None, metavar="N", help="... of each of the last N months.")
@click.option("--keep-yearly", type=int, default=None, metavar="N", help="... of each of the last N years.")
@click.option("--keep-within", metavar="DURATION",
              help="Keep every backup newer than DURATION (1y2m3w4d5h) before the group's newest.")
@click.option("--group", "-g", "groups", multiple=True, metavar="PATTERN",
              help="Only groups matching this glob (repeatable; default: every group).")
@click.option("--group-by", type=click.Choice(api.GROUP_BY), default=api.GROUP_BY[0], show_default=True,
              help="Apply the rules to the backups of each group from each host, or of each group from "
                   "all hosts together.")
@click.option("--dry-run", "-n", is_flag=True, help="Show what would be kept and removed; change nothing.")
@click.option("--force", is_flag=True, help="Allow removing every backup of a group.")
@click.option("--no-gc", is_flag=True, help="Only remove the backups; free their space with a later 'gc'.")
@_gc_options
@metrics_file_option
@common
def prune_cmd(keep_last: int | None, keep_hourly: int | None, keep_daily: int | None,
              keep_weekly: int | None, keep_monthly: int | None, keep_yearly: int | None, keep_within: str | None, groups: tuple[str, ...], group_by: str, dry_run: bool, force: bool,
              no_gc: bool, max_unused: float, repo: str | None, as_json: bool | None, quiet: bool | None) -> None:
    """Remove backups that no retention rule keeps, per group and host, then free their space."""
    recorded = {"keep_last": keep_last, "keep_hourly": keep_hourly, "keep_daily": keep_daily,
                "keep_weekly": keep_weekly, "keep_monthly": keep_monthly, "keep_yearly": keep_yearly,
                "keep_within": keep_within, "groups": list(groups), "group_by": group_by}
    policy = api.prune_rules(recorded)  # a bad duration is an error before the repository is opened
    c = _ctx(repo, as_json, quiet)
    r = _open_unindexed(c)
    res = api.prune(r, policy, list(groups), dry_run=dry_run, force=force,
                    max_unused=None if no_gc else max_unused, group_by=group_by)
    if not dry_run:
        api.record_prune_policy(r, recorded)

    def text() -> str:
        lines = _decision_lines(res.plan) if dry_run else []
        n, total = len(res.removed), len(res.plan.decisions)
        lines.append(f"{'would remove' if dry_run else 'removed'} {n} of {total} backup(s) ({policy.describe()})")
        if res.gc is not None:
            lines.append(_gc_text(res.gc, human))
        elif not dry_run and n:
            lines.append("their space is freed by the next 'dedupe gc'")
        return "\n".join(lines)

    c.out(res.to_json(), text)
    warn_exit(c, write_metrics(r) if not dry_run else [], "prune")


@click.command("forget")
@click.argument("backup_ids", nargs=-1, required=True, metavar="ID...")
@common
def forget_cmd(backup_ids: tuple[str, ...], repo: str | None, as_json: bool | None, quiet: bool | None) -> None:
    """Remove chosen backups (their data is freed by the next 'gc')."""
    c = _ctx(repo, as_json, quiet)
    removed = api.forget(c.open(), list(backup_ids))
    c.out({"removed": removed},
          lambda: f"removed {len(removed)} backup(s): {' '.join(b[:12] for b in removed)}; "
                  f"'dedupe gc' frees their space")

def _protect_command(name: str, protected: bool, doc: str) -> click.Command:
    @click.command(name, help=doc)
    @click.argument("backup_id", metavar="ID")
    @common
    def cmd(backup_id: str, repo: str | None, as_json: bool | None, quiet: bool | None) -> None:
        c = _ctx(repo, as_json, quiet)
        bid = api.protect(c.open(), backup_id, protected)
        c.out({"id": bid, "protected": protected},
              lambda: f"backup {bid[:12]} is {'protected' if protected else 'no longer protected'}")

    return cmd


protect_cmd = _protect_command("protect", True, "Protect a backup: no prune or forget removes it.")
unprotect_cmd = _protect_command("unprotect", False, "Remove a backup's protection.")


@click.command("gc")
@click.option("--dry-run", "-n", is_flag=True, help="Show what would be freed; change nothing.")
@_gc_options
@common
def gc_cmd(dry_run: bool, max_unused: float, repo: str | None, as_json: bool | None, quiet: bool | None) -> None:
    """Free the space of data no backup references."""
    c = _ctx(repo, as_json, quiet)
    r = api.gc(_open_unindexed(c), max_unused, dry_run)
    c.out(r.to_json(), lambda: _gc_text(r, human))


@click.command("stats")
@click.option("--group", "-g", "groups", multiple=True, metavar="PATTERN", help="Only groups matching this glob.")
@click.option("--format", "fmt", type=click.Choice(["text", "json", "prometheus"]), default=None,
              help="text (default), json (as --json), or prometheus: the text exposition format, with the "
                   "newest backup of each group and host and the last check.")
@common
def stats_cmd(groups: tuple[str, ...], fmt: str | None, repo: str | None, as_json: bool | None,
              quiet: bool | None) -> None:
    """Space per group, per host, per backup and in total: original, deduplicated, stored."""
    c = _ctx(repo, as_json or fmt == "json", quiet)
    r = c.open()
    every = api.list_backups(r)
    st = api.stats(r, list(groups), every)
    if fmt == "prometheus":
        from dedupe import metrics
        shown = [b for b in every if b.manifest.group in st.groups]
        click.echo(metrics.render(shown, st, api.records_of(r, "check")), nl=False)
        return

    def row(label: str, u: Any) -> str:
        return (f"{label:<40}  {u.backups:>7}  {human(u.original):>10}  {human(u.deduplicated):>10}  "
                f"{human(u.stored):>10}  {u.ratio:>6.1f}x")

    def text() -> str:
        lines = [f"{'GROUP':<40}  {'BACKUPS':>7}  {'ORIGINAL':>10}  {'DEDUP':>10}  {'STORED':>10}  {'RATIO':>7}"]
        lines += [row(g, u) for g, u in sorted(st.groups.items())]
        if len(st.hosts) > 1:
            lines += [row(f"host {h or '(none)'}", u) for h, u in sorted(st.hosts.items())]
        lines.append(row("total (all groups)", st.total))
        lines.append(f"repository: {human(st.repository_bytes)} in packs, "
                     f"{human(st.unreferenced_bytes)} referenced by no backup")
        lines.append("")
        lines.append(f"{'ID':<12}  {'TIME':<16}  {'ORIGINAL':>10}  {'ONLY HERE':>10}  {'FREES':>10}  GROUP (HOST)")
        lines += [f"{b.id[:12]:<12}  {_when(b.time_ns):<16}  {human(b.original):>10}  {human(b.unique_bytes):>10}  "
                  f"{human(b.unique_stored):>10}  {b.group} ({b.host})" for b in st.backups]
        return "\n".join(lines)

    c.out(st.to_json(), text)


@click.group("repair")
def repair_group() -> None:
    """Repair a damaged repository (after 'dedupe check' names the damage)."""


@repair_group.command("index")
@click.option("--dry-run", "-n", is_flag=True, help="Show what would be indexed and removed; change nothing.")
@common
def repair_index_cmd(dry_run: bool, repo: str | None, as_json: bool | None, quiet: bool | None) -> None:
    """Rebuild the index from the packs' own tables: index every pack no intact segment
    does, then remove the damaged segments."""
    c = _ctx(repo, as_json, quiet)
    r = api.repair_index(c.open(load_index=False), dry_run=dry_run)

    def text() -> str:
        verb = "would index" if dry_run else "indexed"
        lines = [f"{verb} {r.chunks_indexed} chunk(s) of {r.packs_indexed} pack(s); "
                 f"{'would remove' if dry_run else 'removed'} {len(r.damaged_segments)} damaged index segment(s)"]
        lines += [f"warning: pack {p[:12]}: table unreadable ({why}); its chunks stay unknown"
                  for p, why in sorted(r.unreadable_packs.items())]
        return "\n".join(lines)

    c.out(r.to_json(), text)


@repair_group.command("packs")
@click.argument("packs", nargs=-1, metavar="[PACK...]")
@click.option("--dry-run", "-n", is_flag=True, help="Read and verify, report what would be salvaged and lost; "
                                                    "change nothing.")
@common
def repair_packs_cmd(packs: tuple[str, ...], dry_run: bool, repo: str | None, as_json: bool | None,
                     quiet: bool | None) -> None:
    """Salvage damaged packs: read the named packs (every pack when none is named) whole,
    copy each blob that verifies into new packs, drop the rest from the index, then
    remove the damaged packs. Reports the lost chunks and the backups that need them."""
    c = _ctx(repo, as_json, quiet)
    r = api.repair_packs(c.open(), list(packs), dry_run=dry_run, progress=c.progress())

    def text() -> str:
        if not r.damaged_packs:
            return f"read {r.packs_read} pack(s): none is damaged"
        verb = "would" if dry_run else ""
        lines = [f"pack {p[:12]}: {why}" for p, why in sorted(r.damaged_packs.items())]
        lines.append(f"{verb + ' salvage' if dry_run else 'salvaged'} {r.chunks_salvaged} chunk(s) of "
                     f"{len(r.damaged_packs)} damaged pack(s) into {len(r.new_packs)} new pack(s); "
                     f"{len(r.lost_chunks)} chunk(s) {'would be ' if dry_run else ''}lost")
        lines += [f"backup {b[:12]} lacks {lack['content_chunks']} content chunk(s) ({lack['content_bytes']} bytes)"
                  + (f" and {lack['item_chunks']} item chunk(s)" if lack["item_chunks"] else "")
                  for b, lack in sorted(r.backups_affected.items())]
        if r.backups_affected:
            lines.append("'dedupe repair backups' rewrites them with the lost pieces marked")
        return "\n".join(lines)

    c.out(r.to_json(), text)
    if r.lost_chunks:  # the repair worked, but data is gone: exit 3, as a warning
        warn_exit(c, [f"{len(r.lost_chunks)} chunk(s) {'would be ' if dry_run else ''}lost, needed by "
                      f"{len(r.backups_affected)} backup(s)"], "repair packs")


@repair_group.command("backups")
@click.argument("backup_ids", nargs=-1, metavar="[ID...]")
@click.option("--dry-run", "-n", is_flag=True, help="Report which backups lack chunks and what; change nothing.")
@click.option("--forget", is_flag=True, help="Remove each original once its repaired backup is committed.")
@common
def repair_backups_cmd(backup_ids: tuple[str, ...], dry_run: bool, forget: bool, repo: str | None,
                       as_json: bool | None, quiet: bool | None) -> None:
    """Rewrite the backups (every one when none is named) that reference lost chunks:
    each lost piece becomes zeros of the same length, named in the new backup's
    'repaired' record; lost item chunks take their files with them. The originals stay
    unless --forget (a later backup of the same data can make them whole again)."""
    c = _ctx(repo, as_json, quiet)
    r = api.repair_backups(c.open(), list(backup_ids), dry_run=dry_run, forget=forget)

    def text() -> str:
        lines = []
        for b in r.backups:
            what = (f"{len(b.lost)} lost piece(s) ({sum(n for _p, _o, n in b.lost)} bytes)"
                    + (f", {b.lost_items} item(s) in {b.lost_item_chunks} lost item chunk(s)"
                       if b.lost_item_chunks else ""))
            if dry_run:
                lines.append(f"backup {b.original[:12]}: would be rewritten: {what}")
            else:
                lines.append(f"backup {b.original[:12]} rewritten as {str(b.repaired)[:12]}: {what} "
                             + ("(original forgotten)" if b.forgotten else "(original kept: 'dedupe forget' it, or "
                                                                           "'--forget')"))
        lines.append(f"checked {r.checked} backup(s): {len(r.backups)} "
                     f"{'would be rewritten' if dry_run else 'rewritten'}")
        return "\n".join(lines)

    c.out(r.to_json(), text)


COMMANDS = (check_cmd, prune_cmd, forget_cmd, protect_cmd, unprotect_cmd, gc_cmd, stats_cmd, repair_group)
