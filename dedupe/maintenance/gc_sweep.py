"""gc's phase 2, under the exclusive lock (no backup is running): the packs that backups
committed during phase 1 reuse are kept, the segment that supersedes all the old ones
is written (gc's commit point), and only then are packs no segment lists, the old
segments, forgotten protection markers and ``.tmp`` leftovers deleted."""

from __future__ import annotations

import numpy as np

from dedupe.maintenance.gc_mark import (MarkSet, Record, Survey, list_packs, list_segments, load_manifests,
                                        locate_items, mark_backup)
from dedupe.maintenance.gc_report import GcOptions, GcReport
from dedupe.maintenance.gc_repack import SegmentWriter
from dedupe.repository import Repository
from repo_format import layout


def sweep(repo: Repository, s: Survey, out: SegmentWriter | None, gone: dict[str, np.ndarray],
          opts: GcOptions, report: GcReport) -> None:
    """Phase 2, under the exclusive lock. ``out`` holds phase 1's segments, or is
    None when phase 1 left the index as it was (then only unindexed packs go)."""
    view = s.view
    now_segments = list_segments(repo)
    mine = set(out.written) if out is not None else set()
    new_segments = [n for n in now_segments if n not in s.segments and n not in mine]
    carried: list[Record] = []  # packs of backups committed during phase 1
    for name in new_segments:
        carried.extend(view.load_segment_packed(name)[0])
    late = load_manifests(repo, [n for n in repo.manifest_names() if n not in s.manifests])
    if late and gone:
        locate_items(view, new_segments + s.live_segments, late.values())
        late_marks = MarkSet()
        for name, m in late.items():
            mark_backup(view, m, late_marks, f"backup {name[:12]}")
        rescued = {p for p, keys in gone.items() if late_marks.find(keys).any()}
        for name in sorted({s.packs[p].segment for p in rescued}):
            carried.extend(r for r in view.load_segment_packed(name)[0] if r[0] in rescued)
        report.packs_kept_for_new_backups = len(rescued)
    replaced: list[str] = []
    if out is None:
        indexed = set(s.packs) | {r[0] for r in carried}
    else:
        for rec in carried:
            out.add(rec)
        replaced = [n for n in now_segments if n not in mine]
        out.flush(supersedes=replaced)  # the commit point of gc: from here on the old segments are ignored
        report.segments_replaced = len(replaced)
        indexed = out.packs
    stored = list_packs(repo)
    for name in sorted(set(stored) - indexed):
        repo.storage.delete(layout.pack_path(name))
        report.packs_deleted += 1
        report.bytes_deleted += stored[name]
    for name in replaced:
        repo.storage.delete(layout.index_path(name))
    kept = set(stored) & indexed
    report.packs_after = len(kept)
    report.bytes_after = sum(stored[n] for n in kept)
    report.unused_bytes_after = sum(p.total - p.live for n, p in s.packs.items() if n in kept)
    report.markers_removed = _drop_markers(repo)
    report.temp_files_removed = repo.storage.remove_stale_temp_files(opts.tmp_max_age_s)
    report.uploads_aborted = repo.storage.abort_stale_uploads(opts.tmp_max_age_s)


def _drop_markers(repo: Repository) -> int:
    backups = set(repo.manifest_names())
    n = 0
    for path, _ in repo.storage.list(layout.PROTECT_DIR):
        if path.rsplit("/", 1)[-1] not in backups:
            repo.storage.delete(path)
            n += 1
    return n
