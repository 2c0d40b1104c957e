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

Cost: nightly backups of unchanged data share most of their item chunks, so each
distinct item chunk is read (all in one pass) and decoded once per ``compute`` (the
content chunks its items reference are kept as a set), and the sizes of the chunks
come from one pass over the index (which also finds what no backup references). Item chunks end between items (FORMAT.md 9.1), so each decodes alone; a backup
one of whose item chunks does not (a damaged stream) is decoded whole as one stream,
for the same error as before.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

from dedupe.maintenance.prune import select_groups
from dedupe.repository import Repository
from dedupe.read import iter_items, read_chunks
from repo_format import items, layout, manifest
from repo_format.errors import FormatError

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


def _item_chunk_refs(repo: Repository, ms: Sequence[tuple[str, manifest.Manifest]]) -> dict[bytes, frozenset[bytes]]:
    """Item chunk -> the content chunks its items reference, for every distinct item
    chunk of these backups, each read (in one pass) and decoded once. One that does not
    decode alone (not whole items) is left out: its backups are decoded whole."""
    todo = list({cid: n for _, m in ms for cid, n in m.items}.items())
    out: dict[bytes, frozenset[bytes]] = {}
    for (cid, _), data in zip(todo, read_chunks(repo, todo)):
        try:
            its = list(items.decode_items([data], "item chunk"))
        except FormatError:
            continue
        out[cid] = frozenset(ref[0] for item in its for ref in items.chunk_refs(item))
    return out


def _referenced(repo: Repository, name: str, m: manifest.Manifest,
                item_chunks: dict[bytes, frozenset[bytes]]) -> set[bytes]:
    """Every chunk ``m`` references: its item chunks and the content chunks of its items."""
    mine = {cid for cid, _ in m.items}
    if all(cid in item_chunks for cid in mine):
        for cid in mine.copy():
            mine |= item_chunks[cid]
        return mine
    what = f"backup {name[:12]}"  # the stream whole, as one (and its own error, if any)
    for item in iter_items(repo, m, what):
        mine.update(ref[0] for ref in items.chunk_refs(item))
    return mine


def _sizes(repo: Repository, cid: bytes) -> tuple[int, int]:
    """A referenced chunk the index lacks: ``locate`` says so (ChunkNotInIndex)."""
    loc = repo.locate(cid)
    return loc.raw_len, loc.length


def compute(repo: Repository, patterns: list[str] | None = None,
            manifests: Sequence[tuple[str, manifest.Manifest]] | None = None) -> StatsReport:
    """``manifests``: every backup's, when the caller has them loaded already."""
    ms = list(manifests) if manifests is not None else [(n, repo.load_manifest(n)) for n in repo.manifest_names()]
    shown = select_groups((m.group for _, m in ms), patterns or [])
    owner: dict[bytes, int] = {}  # chunk -> the one backup referencing it, or SHARED
    group_chunks: dict[str, set[bytes]] = {}
    host_chunks: dict[str, set[bytes]] = {}
    item_chunks = _item_chunk_refs(repo, ms)
    report = StatsReport()
    for i, (name, m) in enumerate(ms):
        mine = _referenced(repo, name, m, item_chunks)
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
    # One pass over the index: each referenced chunk's sizes, and what no backup references
    sizes: dict[bytes, tuple[int, int]] = {}  # chunk -> raw length, stored length
    for cid, loc in repo.iter_index():
        if cid in owner:
            sizes[cid] = loc.raw_len, loc.length
        else:
            report.unreferenced_bytes += loc.length
    for cid, i in owner.items():
        raw, stored = sizes.get(cid) or _sizes(repo, cid)
        report.total.deduplicated += raw
        report.total.stored += stored
        b = by_id.get(ms[i][0]) if i != SHARED else None
        if b is not None:
            b.unique_bytes += raw
            b.unique_stored += stored
    for usage, by_key in ((report.groups, group_chunks), (report.hosts, host_chunks)):
        for key, chunks in by_key.items():
            raw = stored = 0
            for cid in chunks:
                r, n = sizes[cid]
                raw += r
                stored += n
            usage[key].deduplicated += raw
            usage[key].stored += stored
    report.total.backups = len(ms)
    report.total.original = sum(m.size for _, m in ms)
    report.repository_bytes = sum(size for _, size in repo.storage.list(layout.DATA_DIR))
    report.backups.sort(key=lambda b: (b.group, b.time_ns, b.id))
    return report
