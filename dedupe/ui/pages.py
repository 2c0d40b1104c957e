"""The figures of each page, computed from the in-memory snapshot (``model``): plain
data for the templates, no HTML here."""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass, field
from typing import Any

from dedupe import api
from dedupe.ui.model import RepoView, Snapshot

CHART_GROUPS = 15  # groups in the original-vs-stored chart (the largest)
RUNS_PER_PAGE = 20
CHART_DAYS = 400  # the repository-over-time chart's span at most


def _day(time_ns: int) -> str:
    return dt.datetime.fromtimestamp(time_ns / 1e9).strftime("%Y-%m-%d")


def nightly(snap: Snapshot) -> dict[str, list[Any]]:
    """Per day with backups: new data stored that day, and the running total of what the
    backups still in the repository added (the stored size over time, less what prune
    and gc freed since)."""
    days: dict[str, int] = {}
    for b in snap.backups:
        days[_day(b.manifest.time_ns)] = days.get(_day(b.manifest.time_ns), 0) + b.manifest.stats.get("new_stored", 0)
    if days:  # every day from the first to the last, a night without backups as 0
        first, last = dt.date.fromisoformat(min(days)), dt.date.fromisoformat(max(days))
        first = max(first, last - dt.timedelta(days=CHART_DAYS - 1))
        labels = [(first + dt.timedelta(days=i)).isoformat() for i in range((last - first).days + 1)]
    else:
        labels = []
    cumulative, total = [], sum(v for d, v in days.items() if labels and d < labels[0])
    for d in labels:
        total += days.get(d, 0)
        cumulative.append(total)
    return {"labels": labels, "new": [days.get(d, 0) for d in labels], "stored": cumulative}


def last_check(view: RepoView) -> dict[str, Any] | None:
    checks = view.records("check")
    return checks[-1] if checks else None


def overview(view: RepoView) -> dict[str, Any]:
    snap, st = view.snapshot, view.stats
    report = st.report
    groups: list[tuple[str, Any]] = []
    if report is not None:
        groups = sorted(report.groups.items(), key=lambda kv: -kv[1].original)[:CHART_GROUPS]
    checks = view.records("check")
    return {
        "backups": len(snap.backups), "groups": len(snap.by_group),
        "hosts": len({b.manifest.host for b in snap.backups}),
        "original": sum(b.manifest.size for b in snap.backups),
        "total": report.total if report is not None else None, "stats": st,
        "stats_stale": report is not None and st.version != snap.version,
        "repository_bytes": report.repository_bytes if report is not None else None,
        "last_check": checks[-1] if checks else None,
        "last_full_check": next((c for c in reversed(checks) if c.get("scope") == "read-data"), None),
        "nightly": nightly(snap),
        "group_chart": {"labels": [g for g, _ in groups], "original": [u.original for _, u in groups],
                        "stored": [u.stored for _, u in groups]},
        "newest": snap.backups[-1] if snap.backups else None,
        "unreadable": sorted(view.unreadable.items()),
    }


def retention(view: RepoView) -> dict[str, Any]:
    """What the last recorded prune policy would do now: ``{"policy": ..., "decisions":
    {backup id: decision}}``, or ``{"policy": None}``."""
    prunes = view.records("prune")
    if not prunes:
        return {"policy": None, "decisions": {}}
    policy = prunes[-1].get("policy") or {}

    def make(snap: Snapshot) -> dict[str, Any]:
        try:
            decisions = api.prune_dry_run(view.repo, policy, list(snap.backups))
        except Exception as e:  # a policy this version cannot apply: say so
            return {"policy": policy, "decisions": {}, "error": str(e)}
        return {"policy": policy, "decisions": {d["id"]: d for d in decisions}}
    return dict(view.derived(f"retention:{prunes[-1].get('time')}", make))


def describe_policy(policy: dict[str, Any] | None) -> str:
    if not policy:
        return ""
    order = ("last", "hourly", "daily", "weekly", "monthly", "yearly", "within")
    rules = [f"{k} {policy[f'keep_{k}']}" for k in order if policy.get(f"keep_{k}")]
    where = f" on {', '.join(policy['groups'])}" if policy.get("groups") else ""
    return ", ".join(rules) + where


@dataclass
class SeriesRow:
    group: str
    host: str
    newest: api.BackupInfo
    age_s: float
    stale: bool
    count: int
    original: int
    keep: int | None = None
    remove: int | None = None


@dataclass
class GroupRow:
    group: str
    series: list[SeriesRow] = field(default_factory=list)
    usage: Any = None  # stats.Usage, once computed

    @property
    def stale(self) -> bool:
        return any(s.stale for s in self.series)


def groups(view: RepoView, stale_hours: float, now: float | None = None) -> list[GroupRow]:
    now = time.time() if now is None else now
    snap, report = view.snapshot, view.stats.report
    decisions = retention(view)["decisions"]
    rows = []
    for group, backups in sorted(snap.by_group.items()):
        row = GroupRow(group, usage=report.groups.get(group) if report is not None else None)
        by_host: dict[str, list[api.BackupInfo]] = {}
        for b in backups:
            by_host.setdefault(b.manifest.host, []).append(b)
        for host, mine in sorted(by_host.items()):
            newest = mine[-1]
            age = now - newest.manifest.time_ns / 1e9
            s = SeriesRow(group, host, newest, age, age > stale_hours * 3600, len(mine),
                          sum(b.manifest.size for b in mine))
            if decisions:
                s.keep = sum(1 for b in mine if decisions.get(b.id, {}).get("keep", True))
                s.remove = len(mine) - s.keep
            row.series.append(s)
        rows.append(row)
    return rows


@dataclass
class RunObject:
    group: str
    backup: api.BackupInfo | None = None
    error: str | None = None
    size: int = 0
    new_stored: int = 0


@dataclass
class Run:
    run: str
    time_ns: int
    server: str = ""
    host: str = ""
    objects: list[RunObject] = field(default_factory=list)

    @property
    def failed(self) -> int:
        return sum(1 for o in self.objects if o.error is not None)


def runs(view: RepoView) -> list[Run]:
    """Every ``backup lxd`` run, newest first: the backups each committed (from the
    repository, grouped as ``api.runs`` does, from the UI's snapshot) and the objects that
    failed (from this machine's records). Unlike ``api.runs`` on purpose: LXD runs only
    (the page is about them), and a run that committed nothing shows too (its record)."""
    def make(snap: Snapshot) -> list[Run]:
        found = []
        for info in api.group_runs(b for b in snap.backups if isinstance(b.manifest.meta.get("lxd"), dict)):
            first = info.backups[0].manifest
            found.append(Run(info.run, min(b.manifest.time_ns for b in info.backups),
                             (first.meta["lxd"].get("server") or {}).get("server_name") or "", first.host,
                             [RunObject(b.manifest.group, b, None, b.manifest.size,
                                        b.manifest.stats.get("new_stored", 0)) for b in info.backups]))
        return found

    committed = view.derived("runs", make)
    merged = {r.run: Run(r.run, r.time_ns, r.server, r.host, list(r.objects)) for r in committed}
    for rec in view.records("run"):
        run_id = str(rec.get("run", ""))
        r = merged.get(run_id)
        if r is None:
            r = merged[run_id] = Run(run_id, int(float(rec.get("time", 0)) * 1e9),
                                     str((rec.get("server") or {}).get("server_name") or ""), str(rec.get("host") or ""))
        r.objects += [RunObject(str(o["group"]), None, str(o["error"])) for o in api.failed_objects(rec)]
    for r in merged.values():
        r.objects.sort(key=lambda o: (o.error is None, o.group))
    return sorted(merged.values(), key=lambda r: -r.time_ns)


def previous_in_group(view: RepoView, b: api.BackupInfo) -> api.BackupInfo | None:
    """The backup of the same group (and host, if it has one there) just before ``b``."""
    same = [x for x in view.snapshot.by_group.get(b.manifest.group, [])
            if (x.manifest.time_ns, x.id) < (b.manifest.time_ns, b.id)]
    same_host = [x for x in same if x.manifest.host == b.manifest.host]
    return (same_host or same or [None])[-1]
