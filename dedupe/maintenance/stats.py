"""Space accounting: where the stored bytes go, per group, per host, per backup and in
total (a host's usage counts each chunk its backups reference once, so hosts that share
content each count it: the hosts' figures add up to more than the total).

- original: the size of what was backed up (sum of the backups' sizes);
- deduplicated: the raw bytes of the distinct chunks the backups reference
  (content and item-stream chunks);
- stored: the compressed bytes of those chunks in packs;
- ratio: original / deduplicated;
- per backup, ``unique_*``: the chunks no other backup references, i.e. what
  ``forget`` + ``gc`` of that backup alone would free.

Every backup of the repository is walked even when only some groups are shown,
since a chunk is unique to a backup only if no backup of any group references it.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass, field

from dedupe.maintenance.prune import select_groups
from dedupe.repository import Repository
from dedupe.read import iter_items
from repo_format import items, layout

SHARED = -1


@dataclass
class Usage:
    backups: int = 0
    original: int = 0
    deduplicated: int = 0
    stored: int = 0

    @property
    def ratio(self) -> float:
        return self.original / self.deduplicated if self.deduplicated else 0.0

    def to_json(self) -> dict[str, object]:
        return {**asdict(self), "ratio": round(self.ratio, 3)}


@dataclass
class BackupUsage:
    id: str
    group: str
    time_ns: int
    original: int
    host: str = ""
    unique_bytes: int = 0  # raw bytes only this backup references
    unique_stored: int = 0  # their stored size: what removing this backup frees

    def to_json(self) -> dict[str, object]:
        when = dt.datetime.fromtimestamp(self.time_ns / 1e9, dt.UTC).isoformat(timespec="seconds")
        return {**asdict(self), "short_id": self.id[:12], "time": when}


@dataclass
class StatsReport:
    groups: dict[str, Usage] = field(default_factory=dict)
    hosts: dict[str, Usage] = field(default_factory=dict)  # of the groups shown
    backups: list[BackupUsage] = field(default_factory=list)
    total: Usage = field(default_factory=Usage)
    repository_bytes: int = 0  # every pack in storage
    unreferenced_bytes: int = 0  # stored chunks no backup references (gc frees most of them)

    def to_json(self) -> dict[str, object]:
        return {"groups": {g: u.to_json() for g, u in sorted(self.groups.items())},
                "hosts": {h: u.to_json() for h, u in sorted(self.hosts.items())},
                "backups": [b.to_json() for b in self.backups], "total": self.total.to_json(),
                "repository_bytes": self.repository_bytes, "unreferenced_bytes": self.unreferenced_bytes}


def compute(repo: Repository, patterns: list[str] | None = None) -> StatsReport:
    names = repo.manifest_names()
    ms = [(n, repo.load_manifest(n)) for n in names]
    shown = select_groups((m.group for _, m in ms), patterns or [])
    owner: dict[bytes, int] = {}  # chunk -> the one backup referencing it, or SHARED
    group_chunks: dict[str, set[bytes]] = {}
    host_chunks: dict[str, set[bytes]] = {}
    report = StatsReport()
    for i, (name, m) in enumerate(ms):
        mine = {cid for cid, _ in m.items}
        for item in iter_items(repo, m, f"backup {name[:12]}"):
            mine.update(ref[0] for ref in items.chunk_refs(item))
        for cid in mine:
            owner[cid] = i if owner.get(cid, i) == i else SHARED
        if m.group in shown:
            for key, usage, chunks in ((m.group, report.groups, group_chunks), (m.host, report.hosts, host_chunks)):
                chunks.setdefault(key, set()).update(mine)
                u = usage.setdefault(key, Usage())
                u.backups += 1
                u.original += m.size
            report.backups.append(BackupUsage(name, m.group, m.time_ns, m.size, m.host))
    by_id = {b.id: b for b in report.backups}
    for cid, i in owner.items():
        loc = repo.locate(cid)
        report.total.deduplicated += loc.raw_len
        report.total.stored += loc.length
        b = by_id.get(ms[i][0]) if i != SHARED else None
        if b is not None:
            b.unique_bytes += loc.raw_len
            b.unique_stored += loc.length
    for usage, by_key in ((report.groups, group_chunks), (report.hosts, host_chunks)):
        for key, chunks in by_key.items():
            for cid in chunks:
                loc = repo.locate(cid)
                usage[key].deduplicated += loc.raw_len
                usage[key].stored += loc.length
    report.total.backups = len(ms)
    report.total.original = sum(m.size for _, m in ms)
    report.repository_bytes = sum(size for _, size in repo.storage.list(layout.DATA_DIR))
    report.unreferenced_bytes = sum(loc.length for cid, loc in repo.iter_index() if cid not in owner)
    report.backups.sort(key=lambda b: (b.group, b.time_ns, b.id))
    return report
