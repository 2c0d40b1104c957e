"""Retention: which backups a policy keeps, protection markers, forgetting backups.

The rules are restic's ``forget`` rules (borg's ``prune`` agrees on the bucket
rules), applied to each series on its own: the backups of one group from one host, as
restic groups by host and paths (``--group-by group`` merges the hosts); FORMAT.md
section 16, README "Retention":

- ``last N``: the N newest backups.
- ``hourly/daily/weekly/monthly/yearly N``: walking from the newest backup to the
  oldest, the newest backup of each hour/day/ISO week/month/year, for the N most
  recent such periods that have a backup. When there are fewer than N such periods,
  the oldest backup is kept too (as restic >= 0.17 and borg >= 1.2 do).
- ``within DURATION``: every backup newer than DURATION before the group's newest
  backup (not before now: a group that stopped being backed up keeps its history).

Each rule runs over all the group's unprotected backups independently; a backup is
kept if any rule keeps it, and the result names every rule that did. Protected
backups (a ``protect/<backup id>`` marker, section 16.2) are kept, never counted
by the rules, and cannot be forgotten until unprotected.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import os
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from dedupe import records
from dedupe.errors import DedupeError
from dedupe.locking import maintenance_lock
from dedupe.maintenance.series import GROUP_BY, describe_series, series_group, series_of
from dedupe.repository import Repository
from dedupe.storage import ObjectNotFound
from repo_format import layout, manifest

if TYPE_CHECKING:
    from dedupe.maintenance.gc import GcOptions, GcReport


class BadPolicy(DedupeError):
    """A retention policy, group pattern or duration that cannot be used."""

    exit_code = 80


class WouldRemoveAll(DedupeError):
    """The policy removes every backup of a group and --force was not given."""

    exit_code = 81


class BackupProtected(DedupeError):
    exit_code = 83


# -- durations -------------------------------------------------------------------------

_DURATION = re.compile(r"(\d+)([ymwdh])")


MAX_DURATION_YEARS = 10000  # a longer --keep-within is refused (exit code 80), not an overflow


@dataclass(frozen=True)
class Duration:
    years: int = 0
    months: int = 0
    weeks: int = 0
    days: int = 0
    hours: int = 0

    def before(self, t: dt.datetime) -> dt.datetime:
        """``t`` minus this duration; years and months are calendar steps, the day
        clamped to the month's length (31 March minus 1m is 28/29 February)."""
        try:
            months = t.year * 12 + (t.month - 1) - (self.years * 12 + self.months)
            year, month = divmod(months, 12)
            month += 1
            next_month = dt.date(year + (month == 12), month % 12 + 1, 1)
            last_day = (next_month - dt.timedelta(days=1)).day
            shifted = t.replace(year=year, month=month, day=min(t.day, last_day))
            return shifted - dt.timedelta(weeks=self.weeks, days=self.days, hours=self.hours)
        except (OverflowError, ValueError):  # before year 1: every backup is within
            return dt.datetime.min.replace(tzinfo=t.tzinfo)

    def too_long(self) -> bool:
        hours = ((self.years * 12 + self.months) * 31 + self.weeks * 7 + self.days) * 24 + self.hours
        return hours > MAX_DURATION_YEARS * 366 * 24

    def __str__(self) -> str:
        parts = zip((self.years, self.months, self.weeks, self.days, self.hours), "ymwdh")
        return "".join(f"{n}{u}" for n, u in parts if n) or "0h"


def parse_duration(text: str) -> Duration:
    """``1y2m3w4d5h`` (any subset, in this order): years, months, weeks, days, hours."""
    s = text.strip().lower()
    pos, seen, got = 0, "", {}
    for m in _DURATION.finditer(s):
        if m.start() != pos or m.group(2) in seen or (seen and "ymwdh".index(m.group(2)) < "ymwdh".index(seen[-1])):
            break
        got[m.group(2)] = int(m.group(1))
        seen += m.group(2)
        pos = m.end()
    if not s or pos != len(s):
        raise BadPolicy(f"malformed duration {text!r}: expected e.g. 1y2m3w4d5h (years, months, weeks, days, hours)")
    d = Duration(got.get("y", 0), got.get("m", 0), got.get("w", 0), got.get("d", 0), got.get("h", 0))
    if d.too_long():
        raise BadPolicy(f"duration {text!r} is too long: at most {MAX_DURATION_YEARS} years")
    return d


# -- the policy -----------------------------------------------------------------------

BUCKETS: dict[str, Callable[[dt.datetime], tuple[int, ...]]] = {
    "hourly": lambda t: (t.year, t.month, t.day, t.hour),
    "daily": lambda t: (t.year, t.month, t.day),
    "weekly": lambda t: tuple(t.isocalendar()[:2]),
    "monthly": lambda t: (t.year, t.month),
    "yearly": lambda t: (t.year,),
}


RULES = ("last", *BUCKETS)


@dataclass(frozen=True)
class Policy:
    """Counts of None are rules not given; 0 is a rule that keeps nothing."""

    last: int | None = None
    hourly: int | None = None
    daily: int | None = None
    weekly: int | None = None
    monthly: int | None = None
    yearly: int | None = None
    within: Duration | None = None
    tz: dt.tzinfo | None = None  # periods are in this time zone; None: the local one

    def __post_init__(self) -> None:
        for name in RULES:
            n = getattr(self, name)
            if n is not None and n < 0:
                raise BadPolicy(f"--keep-{name} must not be negative (got {n})")

    def count(self, rule: str) -> int:
        return getattr(self, rule) or 0

    @property
    def given(self) -> bool:
        return self.within is not None or any(getattr(self, n) is not None for n in RULES)

    def describe(self) -> str:
        parts = [f"{n} {getattr(self, n)}" for n in RULES if getattr(self, n) is not None]
        if self.within is not None:
            parts.append(f"within {self.within}")
        return ", ".join(parts) or "no rule"


@dataclass(frozen=True)
class Backup:
    id: str
    group: str
    time_ns: int
    protected: bool = False
    host: str = ""
    series: str = ""  # the group of its series, when not its own (``series_group``)


@dataclass
class Decision:
    backup: Backup
    reasons: list[str] = field(default_factory=list)  # the rules that keep it; empty: removed

    @property
    def keep(self) -> bool:
        return bool(self.reasons)

    def to_json(self) -> dict[str, object]:
        return {"id": self.backup.id, "group": self.backup.group, "host": self.backup.host,
                "time_ns": self.backup.time_ns,
                "keep": self.keep, "reasons": self.reasons, "protected": self.backup.protected}


def apply_policy(policy: Policy, backups: Iterable[Backup]) -> list[Decision]:
    """Decide for the backups of one group. Returns decisions newest first."""
    newest_first = sorted(backups, key=lambda b: (b.time_ns, b.id), reverse=True)
    decisions = [Decision(b) for b in newest_first]
    rated = [d for d in decisions if not d.backup.protected]
    for d in decisions:
        if d.backup.protected:
            d.reasons.append("protected")
    for d in rated[:policy.count("last")]:
        d.reasons.append(f"last {policy.last}")
    tz = policy.tz
    for name, bucket in BUCKETS.items():
        n = policy.count(name)
        if not n:
            continue
        last_key: tuple[int, ...] | None = None
        kept = 0
        for d in rated:
            key = bucket(dt.datetime.fromtimestamp(d.backup.time_ns / 1e9, tz))
            if key != last_key:
                last_key = key
                d.reasons.append(f"{name} {n}")
                kept += 1
                if kept == n:
                    break
        if kept < n and rated and f"{name} {n}" not in rated[-1].reasons:
            rated[-1].reasons.append(f"{name} {n} (oldest)")
    if policy.within is not None and rated:
        newest = dt.datetime.fromtimestamp(rated[0].backup.time_ns / 1e9, dt.UTC)
        cutoff_ns = int(policy.within.before(newest).timestamp() * 1e9)
        for d in rated:
            if d.backup.time_ns > cutoff_ns or d is rated[0]:
                d.reasons.append(f"within {policy.within}")
    return decisions


# -- groups -------------------------------------------------------------------------------

def group_matches(pattern: str, group: str) -> bool:
    """A glob on group names (``lxd/*/instance/*``); a pattern without glob
    characters also matches the groups below it, as ``list --group`` does."""
    if fnmatch.fnmatchcase(group, pattern):
        return True
    return not any(c in pattern for c in "*?[") and group.startswith(pattern.rstrip("/") + "/")


def select_groups(groups: Iterable[str], patterns: list[str]) -> set[str]:
    """The groups the patterns name; a pattern that matches nothing is an error."""
    all_groups = set(groups)
    if not patterns:
        return all_groups
    chosen: set[str] = set()
    for p in patterns:
        hit = {g for g in all_groups if group_matches(p, g)}
        if not hit:
            raise BadPolicy(f"--group {p!r} matches no group in the repository")
        chosen |= hit
    return chosen


# -- the repository side --------------------------------------------------------------------

def protected_ids(repo: Repository) -> set[str]:
    return {n.rsplit("/", 1)[-1] for n, _ in repo.storage.list(layout.PROTECT_DIR)}


def load_backups(repo: Repository) -> list[tuple[Backup, manifest.Manifest]]:
    """Every backup; a manifest that does not load stops prune (RepositoryDamaged)."""
    from dedupe.maintenance.gc_mark import damaged  # gc (and numpy) load only when maintenance runs
    prot = protected_ids(repo)
    out, problems = [], []
    for name in repo.manifest_names():
        try:
            m = repo.load_manifest(name)
        except DedupeError as e:
            problems.append(f"backup {name[:12]}: {e}")
            continue
        series = series_group(m.group, m.meta)
        out.append((Backup(name, m.group, m.time_ns, name in prot, m.host, "" if series == m.group else series), m))
    if problems:
        raise damaged(problems)
    return out


@dataclass
class PrunePlan:
    decisions: list[Decision]  # every backup of the selected groups, by series, newest first within one
    group_by: str = GROUP_BY[0]

    @property
    def remove(self) -> list[str]:
        return [d.backup.id for d in self.decisions if not d.keep]

    def to_json(self) -> list[dict[str, object]]:
        return [d.to_json() for d in self.decisions]


def plan(backups: list[Backup], policy: Policy, patterns: list[str], force: bool = False,
         group_by: str = GROUP_BY[0]) -> PrunePlan:
    if not policy.given:
        raise BadPolicy("no retention rule given: use --keep-last/-hourly/-daily/-weekly/-monthly/-yearly/-within "
                        "(or 'dedupe forget ID' to remove chosen backups)")
    if group_by not in GROUP_BY:
        raise BadPolicy(f"--group-by {group_by!r}: use one of {', '.join(GROUP_BY)}")
    groups = select_groups((b.group for b in backups), patterns)
    series: dict[tuple[str, str], list[Backup]] = {}
    for b in backups:
        if b.group in groups:
            series.setdefault(series_of(b, group_by), []).append(b)
    decisions: list[Decision] = []
    for key in sorted(series, key=lambda k: (k[1], k[0])):
        mine = apply_policy(policy, series[key])
        if mine and not any(d.keep for d in mine) and not force:
            raise WouldRemoveAll(f"the policy ({policy.describe()}) would remove all {len(mine)} backup(s) "
                                 f"of group {describe_series(key)}; add --force to do that")
        decisions.extend(mine)
    return PrunePlan(decisions, group_by)


def forget(repo: Repository, ids: Iterable[str]) -> list[str]:
    """Remove the manifests of these backups (full ids). Their data stays until gc."""
    prot = protected_ids(repo)
    ids = list(ids)
    for bid in ids:
        if bid in prot:
            raise BackupProtected(f"backup {bid[:12]} is protected; 'dedupe unprotect {bid[:12]}' first")
    for bid in ids:
        repo.storage.delete(layout.manifest_path(bid))
    records.update_seen(repo.config.repo_id, removed=ids)
    return ids


def set_protected(repo: Repository, backup_id: str, protected: bool) -> None:
    """Add or remove the protection marker of a backup (full id)."""
    if protected:
        repo.storage.put(layout.protect_path(backup_id), b"")
    else:
        repo.storage.delete(layout.protect_path(backup_id))


# -- the operations (each under the maintenance lock) -----------------------------------------

@dataclass
class PruneResult:
    plan: PrunePlan
    removed: list[str]
    gc: GcReport | None
    dry_run: bool

    def to_json(self) -> dict[str, object]:
        return {"dry_run": self.dry_run, "backups": self.plan.to_json(), "removed": self.removed,
                "gc": self.gc.to_json() if self.gc is not None else None}


def may_delete(repo: Repository) -> None:
    """Fail (S3: access denied, exit 26) before anything is written when these
    credentials may not delete data, as a write-only backup host's (README, "Write-only
    backup hosts"): deleting a name that does not exist asks the storage just that."""
    try:
        repo.storage.delete(layout.pack_path(os.urandom(32).hex()))
    except ObjectNotFound:
        pass


def run_prune(repo: Repository, policy: Policy, patterns: list[str], *, dry_run: bool = False,
              force: bool = False, gc_options: GcOptions | None = None, lock_wait_s: float = 60.0,
              group_by: str = GROUP_BY[0]) -> PruneResult:
    """Apply ``policy`` to the groups ``patterns`` select, then gc (unless
    ``gc_options`` is None). Refuses a repository that fails its structure check."""
    from dedupe.maintenance.gc import collect, survey
    with maintenance_lock(repo.storage, "prune", lock_wait_s) as held:
        p = plan([b for b, _ in load_backups(repo)], policy, patterns, force, group_by)
        marked = survey(repo, skip=p.remove)  # the structure check, and gc's mark pass of what stays
        if dry_run:
            return PruneResult(p, p.remove, None, True)
        may_delete(repo)
        removed = forget(repo, p.remove)
        report = collect(repo, held, gc_options, marked) if gc_options is not None else None
        return PruneResult(p, removed, report, False)


def run_forget(repo: Repository, id_prefixes: list[str], lock_wait_s: float = 60.0) -> list[str]:
    with maintenance_lock(repo.storage, "forget", lock_wait_s):
        return forget(repo, [repo.resolve_backup_id(p) for p in id_prefixes])


def run_protect(repo: Repository, id_prefix: str, protected: bool, lock_wait_s: float = 60.0) -> str:
    with maintenance_lock(repo.storage, "protect", lock_wait_s):
        bid = repo.resolve_backup_id(id_prefix)
        set_protected(repo, bid, protected)
        return bid


def run_gc(repo: Repository, options: GcOptions | None = None, lock_wait_s: float = 60.0) -> GcReport:
    from dedupe.maintenance.gc import collect
    with maintenance_lock(repo.storage, "gc", lock_wait_s) as held:
        if options is None or not options.dry_run:
            may_delete(repo)
        return collect(repo, held, options)  # its mark pass checks the structure first
