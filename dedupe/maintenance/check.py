"""``dedupe check``: prove the repository whole (FORMAT.md section 13).

Structure: every index segment and manifest decodes and matches its name; every
chunk a backup references is in the index; every pack the index names exists
with the recorded size, and its table agrees with the index. With ``read_data``:
every pack is read whole, its hash checked against its name, and every blob
opened, decompressed and re-hashed; with ``subset`` only some packs are (restic's
``--read-data-subset``: group n of t by pack name, so that t runs read them all, or
a random percentage).
"""

from __future__ import annotations

import datetime as dt
import itertools
import random
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Iterable

from dedupe.errors import DedupeError
from dedupe.maintenance import packcheck
from dedupe import records
from dedupe.progress import Progress, ProgressCallback
from dedupe.repository import Repository
from dedupe.read import iter_items
from repo_format import items, layout
from repo_format.errors import FormatError


def _when(time_ns: int) -> str:
    return dt.datetime.fromtimestamp(time_ns / 1e9, dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC") if time_ns else "?"


class BadSubset(DedupeError):
    exit_code = 2


@dataclass(frozen=True)
class DataSubset:
    """The packs ``check`` reads: group ``n`` of ``t`` (by the pack name's first 32 bits,
    modulo ``t``: the same packs every time, and groups 1 to t together are every pack),
    or a random ``percent`` of them (at least one)."""

    n: int = 1
    t: int = 1
    percent: float | None = None

    @classmethod
    def parse(cls, spec: str) -> DataSubset:
        """``n/t`` or ``x%``."""
        text = spec.strip()
        try:
            if text.endswith("%"):
                percent = float(text[:-1])
                if 0 < percent <= 100:
                    return cls(percent=percent)
            else:
                n, t = (int(x) for x in text.split("/"))
                if 1 <= n <= t:
                    return cls(n, t)
        except ValueError:
            pass
        raise BadSubset(f"--read-data-subset {spec!r}: use n/t (1 <= n <= t, e.g. 1/7) or a percentage (e.g. 5%)")

    def choose(self, packs: Iterable[str]) -> set[str]:
        names = sorted(packs)
        if self.percent is not None:
            k = min(len(names), max(1, round(len(names) * self.percent / 100))) if names else 0
            return set(random.SystemRandom().sample(names, k))
        return {p for p in names if int(p[:8], 16) % self.t == self.n - 1}

    def __str__(self) -> str:
        return f"{self.percent:g}%" if self.percent is not None else f"{self.n}/{self.t}"


@dataclass
class CheckReport:
    errors: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    damaged_packs: dict[str, str] = field(default_factory=dict)  # pack -> why
    damaged_backups: dict[str, list[str]] = field(default_factory=dict)  # backup id -> why
    backups: int = 0
    packs: int = 0
    chunks: int = 0
    bytes_read: int = 0
    packs_read: int = 0

    @property
    def ok(self) -> bool:
        return not self.errors

    def to_json(self) -> dict[str, object]:
        return {"ok": self.ok, "errors": self.errors, "notes": self.notes, "damaged_packs": self.damaged_packs,
                "damaged_backups": self.damaged_backups, "backups": self.backups, "packs": self.packs,
                "chunks": self.chunks, "bytes_read": self.bytes_read, "packs_read": self.packs_read}


def check(repo: Repository, read_data: bool = False, progress: ProgressCallback | None = None,
          subset: DataSubset | None = None) -> CheckReport:
    """``read_data``: read packs whole (every pack, or those ``subset`` chooses)."""
    r = CheckReport()
    repo.reload_index(on_error=lambda name, e: r.errors.append(f"index segment {name[:16]}...: {e}"))
    indexed_per_pack = repo.index_counts()
    r.chunks = repo.chunk_count()

    # Backups: which packs each one needs.
    users: dict[str, set[str]] = defaultdict(set)  # pack -> backup ids
    seen_before = records.seen_backups(repo.config.repo_id)
    now_seen: dict[str, list[object]] = {}
    for name in repo.manifest_names():
        r.backups += 1
        problems: list[str] = []
        now_seen[name] = seen_before.get(name, ["?", 0])
        try:
            m = repo.load_manifest(name)
            now_seen[name] = [m.group, m.time_ns]
            for cid, _n in m.items:
                if not repo.has_chunk(cid):
                    problems.append(f"item chunk {cid.hex()[:16]}... not in the index")
            content: Iterable[tuple[bytes, int]] = () if problems else (
                (c[0], c[1]) for item in iter_items(repo, m, f"backup {name[:12]}") for c in items.chunk_refs(item))
            refs = itertools.chain(m.items, content)  # streamed: memory does not grow with the backup
            for cid, loc in repo.iter_locations(cid for cid, _n in refs):
                if loc is not None:
                    users[loc.pack].add(name)
                elif len(problems) < 5:
                    problems.append(f"chunk {cid.hex()[:16]}... not in the index")
        except (DedupeError, FormatError) as e:
            problems.append(str(e))
        if problems:
            r.damaged_backups[name] = problems
            r.errors.append(f"backup {name[:12]}: {problems[0]}")

    # Backups this machine saw at its last check (or made) that are gone: pruned or
    # forgotten elsewhere, or deleted by whoever can write the storage.
    for name, (group, time_ns) in sorted(seen_before.items(), key=lambda kv: kv[1][1]):
        if name not in now_seen:
            r.errors.append(f"backup {name[:12]} ({group}, {_when(time_ns)}) has vanished since this machine last "
                            f"saw the repository (forgotten or pruned elsewhere, or deleted in the storage)")
    warning = records.write_record(repo.config.repo_id, records.SEEN_BACKUPS, now_seen)
    if warning:
        r.notes.append(warning)

    # Damaged segments, with the backups that now lack chunks (the segment may have held them).
    lacking = sorted(b for b, why in r.damaged_backups.items() if any("not in the index" in w for w in why))
    for name, why in sorted(repo.damaged_segments.items()):
        affected = (f"backups lacking chunks: {', '.join(b[:12] for b in lacking)}" if lacking
                    else "no backup lacks a chunk")
        r.errors.append(f"index segment {name[:16]}...: {why}; {affected}; 'dedupe repair index' rebuilds the "
                        f"index from the packs' tables")

    # Packs: present, right size, table agrees with the index (section 13: ``packcheck``).
    stored = {path.rsplit("/", 1)[-1]: size for path, size in repo.storage.list(layout.DATA_DIR)}
    to_read: set[str] = set()
    if read_data:
        to_read = subset.choose(repo.packs) if subset is not None else set(repo.packs)

    jobs = ((pname, stored.get(pname), info.size, info.table_len, pname in to_read)
            for pname, info in sorted(repo.packs.items()))
    for pname, table, nread in packcheck.pack_tables(repo, jobs):
        r.packs += 1
        if nread:
            r.bytes_read += nread
            r.packs_read += 1
        what = f"pack {layout.pack_path(pname)}"
        try:
            if not isinstance(table, list):
                raise table
            entries = table
            # every index entry for this pack must be a row of its table: count the rows the
            # index agrees with, and compare with how many entries the index has for the pack
            agreeing = 0
            for e, loc in zip(entries, repo.locations_if_indexed([e.chunk_id for e in entries])):
                if loc is not None and loc.pack == pname:
                    if (loc.offset, loc.length, loc.raw_len) != (e.offset, e.length, e.raw_len):
                        raise DedupeError(f"index entry for chunk {e.chunk_id.hex()[:16]}... does not match "
                                          f"the pack's table")
                    agreeing += 1
            packcheck.require_listed(indexed_per_pack.get(pname, 0) - agreeing)
        except (DedupeError, FormatError) as e:
            reason = str(e)
            r.damaged_packs[pname] = reason
            who = sorted(users.get(pname, ()))
            needed = f"; needed by backups {', '.join(b[:12] for b in who)}" if who else "; no backup needs it"
            r.errors.append(f"{what}: {reason.removeprefix(what + ': ')}{needed}")
            for b in who:
                r.damaged_backups.setdefault(b, []).append(f"needs damaged {what}")
        if progress is not None:
            progress(Progress("check", pname[:12], r.bytes_read, None, items=r.packs))

    _note_leftovers(repo, r)
    unreferenced = sorted(set(stored) - set(repo.packs))
    if unreferenced:
        why = ("indexed by a damaged segment, or left by an interrupted backup; 'dedupe repair index' "
               "indexes them again" if repo.damaged_segments else "left by an interrupted backup; gc reclaims them")
        r.notes.append(f"{len(unreferenced)} pack(s) not in the index ({why}): "
                       f"{', '.join(p[:12] for p in unreferenced[:5])}")
    return r


def _note_leftovers(repo: Repository, r: CheckReport) -> None:
    """Temporary files (a local repository) and incomplete multipart uploads (S3) that
    interrupted writes left: not damage, but space; gc removes those over an hour old."""
    storage = getattr(repo.storage, "inner", repo.storage)
    temp_files = getattr(storage, "temp_files", None)
    if temp_files is not None:
        sizes = []
        for name in temp_files():
            try:
                sizes.append(storage.size(name))
            except DedupeError:
                continue
        if sizes:
            r.notes.append(f"{len(sizes)} temporary file(s) ({sum(sizes)} bytes) left by interrupted writes; "
                           f"gc removes those older than an hour")
    uploads = getattr(storage, "incomplete_uploads", None)
    if uploads is not None:
        n = len(uploads())
        if n:
            r.notes.append(f"{n} incomplete multipart upload(s) left by interrupted writes; gc aborts those older "
                           f"than an hour")
