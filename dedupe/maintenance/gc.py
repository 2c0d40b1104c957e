"""Garbage collection: free the space of chunks no backup references (FORMAT.md section 15).

Two phases. Phase 1 runs beside backups, under a shared *maintenance* lock that
excludes only other prune/gc/forget runs: it marks every chunk the manifests
reference (item chunks and, through the item streams, content chunks), sorts packs
into kept, dead (nothing referenced) and partly used, copies the referenced blobs of
the most wasteful partly used packs into new packs (until at most ``max_unused`` of
the stored bytes are unreferenced, as restic's ``--max-unused``), and writes the
index of every pack it keeps in new segments that supersede nothing yet. Phase 2
upgrades to the exclusive lock, so no backup is running: it marks the manifests
committed since phase 1 began (a backup may have reused a chunk phase 1 found
unreferenced; such packs are kept), writes the segment that supersedes all the old
ones, and only then deletes packs no segment lists, the old segments, forgotten
protection markers and ``.tmp`` leftovers older than an hour.

The mark pass (``gc_mark.survey``) is also the structure check of section 13, so that
prune and gc refuse a damaged repository without reading the item streams twice;
``gc_repack`` writes phase 1's packs and segments, ``gc_sweep`` is phase 2.
"""

from __future__ import annotations

import numpy as np

from dedupe import locking
from dedupe.locking import maintenance_lock
from dedupe.maintenance.gc_mark import (MarkSet, Record, RepositoryDamaged, Survey, damaged, packed_rows, row_keys,
                                        survey)
from dedupe.maintenance.gc_report import DEFAULT_MAX_UNUSED, GcOptions, GcReport
from dedupe.maintenance.gc_repack import Repacker, SegmentWriter, choose_repacks
from dedupe.maintenance.gc_sweep import sweep
from dedupe.repository import Repository

__all__ = ["DEFAULT_MAX_UNUSED", "GcOptions", "GcReport", "RepositoryDamaged", "collect", "damaged",
           "maintenance_lock", "survey"]

SEGMENT_ENTRIES = 100_000  # chunks per replacement index segment: bounds memory when reading it back


# -- the run ------------------------------------------------------------------------------------

def collect(repo: Repository, held: locking.Lock, opts: GcOptions | None = None,
            done: Survey | None = None) -> GcReport:
    """Run gc; the caller holds the maintenance lock ``held`` (see ``maintenance_lock``).
    ``done``: the mark pass the caller already ran (prune: before forgetting)."""
    opts = opts or GcOptions()
    report = GcReport(dry_run=opts.dry_run)
    s = done or survey(repo)
    view, marks, packs, stored = s.view, s.marks, s.packs, s.stored
    report.backups = len(s.manifests)
    report.chunks_referenced = len(marks)
    report.packs_before, report.bytes_before = len(stored), sum(stored.values())
    repack = choose_repacks(packs, opts.max_unused)
    dead = {n for n, p in packs.items() if not p.live}
    # Rewrite the index when something goes, or when it is in more segments than a rewrite leaves.
    rewrite = bool(dead or repack) or len(s.live_segments) > 1 + s.entries // SEGMENT_ENTRIES
    if opts.dry_run:
        keep = {n: stored.get(n, p.size) for n, p in packs.items() if n not in dead and n not in repack}
        report.packs_after = len(keep) + (1 if repack else 0)
        report.bytes_after = sum(keep.values()) + sum(packs[n].live for n in repack)
        report.packs_deleted = len(stored) - len(keep)
        report.packs_repacked = len(repack)
        report.bytes_deleted = report.bytes_before - sum(keep.values())
        report.unused_bytes_after = sum(p.total - p.live for n, p in packs.items() if n in keep)
        return report

    # Phase 1, beside running backups: new packs and the index of what stays.
    out = SegmentWriter(view, SEGMENT_ENTRIES)
    gone: dict[str, np.ndarray] = {}  # removed pack -> prefixes of the chunks it takes away
    if rewrite:
        repacker = Repacker(view, opts.pack_size, out)
        try:
            repacker.copy_all(_rewrite_plan(view, s, repack, dead, marks, out, gone, report))
            repacker.close()  # the last partial batch of records goes into phase 2's segment
        finally:
            repacker.shutdown()
        report.packs_written, report.bytes_written = repacker.packs_written, repacker.bytes_written
    if opts.before_sweep is not None:
        opts.before_sweep()

    # Phase 2, alone: what backups committed meanwhile, the replacing segment, then deletions.
    with locking.acquire(repo.storage, exclusive=True, purpose="gc", wait_s=opts.lock_wait_s, also_own=held.name):
        sweep(repo, s, out if rewrite else None, gone, opts, report)
    return report


def _rewrite_plan(view: Repository, s: Survey, repack: set[str], dead: set[str], marks: MarkSet,
                  out: SegmentWriter, gone: dict[str, np.ndarray],
                  report: GcReport) -> list[tuple[Record, np.ndarray]]:
    """Phase 1's walk of the index: returns the packs to rewrite with their live-blob
    masks; dead ones are noted in ``gone``, the rest carried into the new index as they are."""
    todo = []
    for name in s.live_segments:
        for rec in view.load_segment_packed(name)[0]:
            if rec[0] in out.packs or rec[0] in gone:
                continue
            if rec[0] in repack:
                keys = row_keys(packed_rows(rec[3]))
                live = marks.find(keys)
                todo.append((rec, live))
                gone[rec[0]] = keys[~live]
                report.packs_repacked += 1
            elif rec[0] in dead:
                gone[rec[0]] = row_keys(packed_rows(rec[3]))
            else:
                out.add(rec)
    return todo
