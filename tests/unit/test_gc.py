"""Garbage collection on the in-memory storage: exact freeing, repacking, crashes, races."""

from __future__ import annotations

import io
import os
import re
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from test_engine import restore, small_repo, store

from dedupe import api
from dedupe.maintenance import gc, prune
from dedupe.maintenance.check import check
from dedupe.repository import CorruptObject, Repository
from dedupe.read import iter_items
from dedupe.storage.faulty import FaultyStorage, InjectedFault
from dedupe.storage.local import LocalStorage
from dedupe.storage.memory import MemoryStorage
from repo_format import index, items, layout, pack


def run_gc(repo: Repository, **kw: object) -> gc.GcReport:
    with gc.maintenance_lock(repo.storage, "gc") as held:
        return gc.collect(repo, held, gc.GcOptions(pack_size=64 << 10, **kw))  # type: ignore[arg-type]


def referenced(repo: Repository) -> set[bytes]:
    out: set[bytes] = set()
    for name in repo.manifest_names():
        m = repo.load_manifest(name)
        out.update(cid for cid, _ in m.items)
        for item in iter_items(repo, m):
            out.update(r[0] for r in items.chunk_refs(item))
    return out


def assert_whole(storage: MemoryStorage, expected: dict[str, bytes]) -> Repository:
    """The repository opens, checks clean with --read-data, and holds exactly these backups."""
    repo = Repository.open(storage)
    report = check(repo, read_data=True)
    assert report.ok, report.errors
    assert not report.notes, report.notes  # no unindexed packs left behind
    assert sorted(repo.manifest_names()) == sorted(expected)
    for bid, data in expected.items():
        assert restore(repo, bid) == data
    return repo


def sample() -> tuple[Repository, dict[str, bytes], list[str]]:
    """Four backups sharing data; the two returned last are forgotten."""
    repo = small_repo()
    a, b, c = os.urandom(300_000), os.urandom(200_000), os.urandom(100_000)
    ids = [store(repo, d) for d in (a, a[:150_000] + b, c, b + c[:5_000])]
    keep = {ids[1]: a[:150_000] + b, ids[3]: b + c[:5_000]}
    return repo, keep, [ids[0], ids[2]]


def test_gc_frees_exactly_the_garbage() -> None:
    repo, keep, gone = sample()
    before = sum(s for _, s in repo.storage.list(layout.DATA_DIR))
    prune.forget(repo, gone)
    r = run_gc(repo, max_unused=0.0)
    after = assert_whole(repo.storage, keep)  # type: ignore[arg-type]
    assert {cid for cid, _ in after.iter_index()} == referenced(after)  # every unreferenced chunk went
    assert r.freed == before - sum(s for _, s in repo.storage.list(layout.DATA_DIR)) > 200_000
    assert r.unused_bytes_after == 0  # max_unused 0: every partly used pack was rewritten
    again = run_gc(after)  # nothing left to do: no rewrite, nothing deleted
    assert (again.packs_deleted, again.packs_written, again.segments_replaced) == (0, 0, 0)


def test_gc_rewrites_mostly_garbage_packs_and_tolerates_a_little() -> None:
    repo = small_repo()
    big = os.urandom(600_000)
    ids = [store(repo, big, pack_size=1 << 20), store(repo, big[:40_000], pack_size=1 << 20)]
    prune.forget(repo, ids[:1])
    tolerant = run_gc(repo, max_unused=1.0, dry_run=True)
    assert tolerant.packs_repacked == 0 and tolerant.unused_bytes_after > 500_000
    r = run_gc(repo)  # default 5%: the pack is >90% garbage
    assert r.packs_repacked == 1 and r.packs_written == 1
    assert r.unused_bytes_after <= 0.05 * r.bytes_after
    assert_whole(repo.storage, {ids[1]: big[:40_000]})  # type: ignore[arg-type]


def test_a_damaged_blob_stops_the_rewrite_and_nothing_is_lost() -> None:
    repo = small_repo()
    big = os.urandom(600_000)
    ids = [store(repo, big, pack_size=1 << 20), store(repo, big[:40_000], pack_size=1 << 20)]
    prune.forget(repo, ids[:1])
    first = items.chunk_refs(next(iter_items(repo, repo.load_manifest(ids[1]))))[0][0]  # big's first chunk
    loc = Repository.open(repo.storage).locate(first)  # in the first backup's pack, which gc rewrites
    path = layout.pack_path(loc.pack)
    data = bytearray(repo.storage.files[path])  # type: ignore[attr-defined]
    data[loc.offset + loc.length // 2] ^= 1
    repo.storage.files[path] = bytes(data)  # type: ignore[attr-defined]
    before = dict(repo.storage.files)  # type: ignore[attr-defined]
    with pytest.raises(CorruptObject, match="does not match its id|damaged|authentic"):
        run_gc(Repository.open(repo.storage))
    assert all(repo.storage.files.get(k) == v for k, v in before.items())  # type: ignore[attr-defined]


def test_dry_run_changes_nothing() -> None:
    repo, _, gone = sample()
    prune.forget(repo, gone)
    files = dict(repo.storage.files)  # type: ignore[attr-defined]
    r = run_gc(repo, dry_run=True)
    assert r.dry_run and r.freed > 0
    assert {k: v for k, v in repo.storage.files.items() if not k.startswith("locks/")} == files  # type: ignore


def count_mutations(files: dict[str, bytes]) -> int:
    inner = MemoryStorage()
    inner.files = dict(files)
    faulty = FaultyStorage(inner)
    run_gc(Repository.open(faulty), max_unused=0.0)
    return faulty.writes


@pytest.mark.parametrize("segment_entries", [gc.SEGMENT_ENTRIES, 8])  # 8: phase 1 writes segments too
def test_crash_at_every_write_and_delete_of_gc(segment_entries: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(gc, "SEGMENT_ENTRIES", segment_entries)
    repo, keep, gone = sample()
    prune.forget(repo, gone)
    base = dict(repo.storage.files)  # type: ignore[attr-defined]
    n = count_mutations(base)
    assert n >= 10  # locks, new packs, segments, deletions of packs and segments
    for fail_at in range(1, n + 1):
        inner = MemoryStorage()
        inner.files = dict(base)
        faulty = FaultyStorage(inner, fail_at=fail_at)
        with pytest.raises(InjectedFault):
            run_gc(Repository.open(faulty), max_unused=0.0)
        for lock_file, _ in list(inner.list(layout.LOCK_DIR)):  # the crashed process's locks are stale
            inner.delete(lock_file)
        assert_whole(inner, keep) if fail_at == n else check_then_finish(inner, keep)


def check_then_finish(inner: MemoryStorage, keep: dict[str, bytes]) -> None:
    repo = Repository.open(inner)
    report = check(repo, read_data=True)
    assert report.ok, report.errors
    for bid, data in keep.items():
        assert restore(repo, bid) == data
    run_gc(repo, max_unused=0.0)  # the next gc finishes the job
    assert_whole(inner, keep)


def test_a_backup_committed_during_phase_1_keeps_the_chunks_it_reused() -> None:
    repo, keep, gone = sample()
    forgotten = restore(repo, gone[0])
    prune.forget(repo, gone)
    late: dict[str, bytes] = {}

    def backup_meanwhile() -> None:  # another process: its own Repository, its index still has the garbage
        other = Repository.open(repo.storage)
        late[api.do_backup_stream(other, "g", io.BytesIO(forgotten), pack_size=64 << 10).id] = forgotten

    r = run_gc(repo, max_unused=0.0, before_sweep=backup_meanwhile)
    assert r.packs_kept_for_new_backups > 0
    assert_whole(repo.storage, {**keep, **late})  # type: ignore[arg-type]


def test_gc_waits_for_a_running_backup_that_reuses_garbage() -> None:
    repo, keep, gone = sample()
    forgotten = restore(repo, gone[0])
    prune.forget(repo, gone)
    rfd, wfd = os.pipe()
    result: dict[str, object] = {}
    phase1_done = threading.Event()

    def backup() -> None:
        other = Repository.open(repo.storage)
        with os.fdopen(rfd, "rb") as f:
            result["backup"] = api.do_backup_stream(other, "g", f, pack_size=64 << 10).id

    def collect() -> None:
        result["gc"] = run_gc(repo, max_unused=0.0, lock_wait_s=60, before_sweep=phase1_done.set)

    tb = threading.Thread(target=backup)
    tb.start()
    with os.fdopen(wfd, "wb") as w:
        w.write(forgotten[:150_000])  # the backup holds its lock and has reused garbage chunks
        w.flush()
        deadline = time.monotonic() + 30
        while not list(repo.storage.list("locks")) and time.monotonic() < deadline:
            time.sleep(0.01)  # (waiting for the lock, not a guess at how long taking it takes)
        assert list(repo.storage.list("locks")), "the backup never took its lock"
        time.sleep(0.3)  # and has read what was written
        tg = threading.Thread(target=collect)
        tg.start()
        assert phase1_done.wait(30)
        time.sleep(0.5)
        assert "gc" not in result  # phase 2 waits for the backup
        w.write(forgotten[150_000:])
    tb.join(30)
    tg.join(30)
    report = result["gc"]
    assert isinstance(report, gc.GcReport) and report.packs_kept_for_new_backups > 0
    assert_whole(repo.storage, {**keep, str(result["backup"]): forgotten})  # type: ignore[arg-type]


def test_a_backup_opened_before_gc_reloads_the_index_under_its_lock() -> None:
    repo, keep, gone = sample()
    forgotten = restore(repo, gone[0])
    prune.forget(repo, gone)
    early = Repository.open(repo.storage)  # index loaded before gc: it lists chunks gc deletes
    run_gc(repo, max_unused=0.0)
    bid = api.do_backup_stream(early, "g", io.BytesIO(forgotten), pack_size=64 << 10).id
    assert_whole(repo.storage, {**keep, bid: forgotten})  # type: ignore[arg-type]


def test_two_maintenance_runs_exclude_each_other() -> None:
    s = MemoryStorage()
    with gc.maintenance_lock(s, "prune"):
        with pytest.raises(gc.locking.RepositoryLocked, match="prune by pid"):
            with gc.maintenance_lock(s, "gc", wait_s=0.3):
                pass
        api.locking.acquire(s, exclusive=False, purpose="backup").release()  # backups are not kept out


def test_structure_problems_stop_gc() -> None:
    repo, _, gone = sample()
    prune.forget(repo, gone)
    victim = next(p for p, _ in repo.storage.list(layout.DATA_DIR))
    repo.storage.delete(victim)
    with pytest.raises(gc.RepositoryDamaged, match="structure check.*missing"):
        prune.run_gc(Repository.open(repo.storage))


def _flip(storage: MemoryStorage, path: str) -> None:
    data = bytearray(storage.files[path])
    data[len(data) // 2] ^= 1
    storage.files[path] = bytes(data)


def _damage_segment(repo: Repository) -> str:
    _flip(repo.storage, next(p for p, _ in repo.storage.list(layout.INDEX_DIR)))  # type: ignore[arg-type]
    return "index segment"


def _damage_manifest(repo: Repository) -> str:
    name = repo.manifest_names()[0]
    _flip(repo.storage, layout.manifest_path(name))  # type: ignore[arg-type]
    return f"backup {name[:12]}"


def _truncate_pack(repo: Repository) -> str:
    path = next(p for p, _ in repo.storage.list(layout.DATA_DIR))
    repo.storage.files[path] = repo.storage.files[path][:-100]  # type: ignore[attr-defined]
    return "truncated"


def _index_lists_more_than_the_table(repo: Repository) -> str:
    seg = repo.load_segment(repo.segments[0])
    rec = seg.packs[0]
    fake = pack.PackEntry(os.urandom(32), rec.entries[0].offset, rec.entries[0].length, 1)
    repo.write_segment(index.IndexSegment([index.PackRecord(rec.name, rec.size, rec.table_len, [*rec.entries, fake])]))
    return "that its table does not have"


def _content_chunks_not_indexed(repo: Repository) -> str:
    """The second backup reuses the first one's chunks; the first is forgotten and its
    segment lost: the second's item stream is indexed, some of its content is not."""
    first, second, _ = sorted(repo.manifest_names(), key=lambda n: repo.load_manifest(n).time_ns)
    first_items = repo.load_manifest(first).items[0][0]
    prune.forget(repo, [first])
    for name in repo.segments:
        if any(e.chunk_id == first_items for r in repo.load_segment(name).packs for e in r.entries):
            repo.storage.delete(layout.index_path(name))  # the first backup's segment
    return f"backup {second[:12]}: chunk"


DAMAGE = [_damage_segment, _damage_manifest, _truncate_pack, _index_lists_more_than_the_table,
          _content_chunks_not_indexed]


@pytest.mark.parametrize("damage", DAMAGE, ids=lambda f: f.__name__.strip("_"))
def test_prune_and_gc_refuse_every_structure_problem_check_reports(damage: Callable[[Repository], str]) -> None:
    """gc's mark pass is prune's and gc's structure check: it refuses what ``check`` refuses,
    naming it, before anything is removed."""
    repo = small_repo()
    a = os.urandom(200_000)
    for data in (a, a + os.urandom(100_000), os.urandom(50_000)):
        store(repo, data)
    repo = Repository.open(repo.storage)
    what = damage(repo)
    assert not check(Repository.open(repo.storage, load_index=False)).ok
    files = dict(repo.storage.files)  # type: ignore[attr-defined]
    # keep-last 2 keeps the damaged backup (the second): damage only in backups prune removes
    # does not stop it (test_prune_removes_a_backup_whose_chunks_are_lost)
    for run in (lambda r: prune.run_gc(r), lambda r: prune.run_prune(r, prune.Policy(last=2), [], force=True),
                lambda r: prune.run_prune(r, prune.Policy(last=2), [], dry_run=True)):
        with pytest.raises(gc.RepositoryDamaged, match=f"structure check.*{re.escape(what)}"):
            run(Repository.open(repo.storage, load_index=False))
        assert {k: v for k, v in repo.storage.files.items() if not k.startswith("locks/")} == files  # type: ignore


def test_prune_removes_a_backup_whose_chunks_are_lost() -> None:
    """The structure check covers what stays (as restic's prune walks only the snapshots
    it keeps): a backup that references lost chunks may be pruned, and what is left
    checks clean."""
    repo = small_repo()
    a = os.urandom(200_000)
    for data in (a, a + os.urandom(100_000), os.urandom(50_000)):
        store(repo, data)
    repo = Repository.open(repo.storage)
    _content_chunks_not_indexed(repo)  # the second backup now references chunks no segment lists
    assert not check(Repository.open(repo.storage, load_index=False)).ok
    third = max(repo.manifest_names(), key=lambda n: repo.load_manifest(n).time_ns)
    res = prune.run_prune(Repository.open(repo.storage, load_index=False), prune.Policy(last=1), [])
    assert len(res.removed) == 1 and repo.manifest_names() == [third]
    after = Repository.open(repo.storage)
    assert check(after, read_data=True).ok


def test_old_temp_files_and_orphans_go(tmp_path: Path) -> None:
    repo = Repository.create(LocalStorage(tmp_path / "r"), small_repo().config.chunker)
    bid = store(repo, os.urandom(50_000))
    old, new = tmp_path / "r/data/.x.1.tmp", tmp_path / "r/index/.y.2.tmp"
    for f in (old, new):
        f.write_bytes(b"partial")
    os.utime(old, (time.time() - 7200, time.time() - 7200))
    repo.storage.put(layout.pack_path("ab" * 32), b"orphan pack of a crashed backup")
    prune.set_protected(repo, "cd" * 32, True)  # a marker whose backup is gone
    r = prune.run_gc(repo)
    assert (r.temp_files_removed, r.packs_deleted, r.markers_removed) == (1, 1, 1)
    assert not old.exists() and new.exists()
    assert restore(Repository.open(repo.storage), bid)


def test_400_nights_of_retention_stay_bounded() -> None:
    """Nightly backups of a slowly changing source, pruned every night with
    --keep-daily 7 --keep-weekly 4 --keep-monthly 12: the repository stops growing."""
    import datetime as dt
    import random

    from dedupe.backup.session import BackupSession
    from dedupe.backup.stream import backup_stream

    rng = random.Random(5)
    repo = small_repo()
    source = bytearray(rng.randbytes(120_000))
    policy = prune.Policy(daily=7, weekly=4, monthly=12, tz=dt.UTC)
    start = dt.datetime(2025, 1, 1, 3, 0, tzinfo=dt.UTC)
    sizes, written = [], 0
    for night in range(400):
        at = rng.randrange(90_000, len(source) - 200)  # a small edit a night, in the "hot" last quarter
        source[at:at + 200] = rng.randbytes(200)
        with BackupSession(repo, kind="stream", group="vm", pack_size=32 << 10) as s:
            s.time_ns = int((start + dt.timedelta(days=night)).timestamp() * 1e9)
            written += backup_stream(s, io.BytesIO(bytes(source))).manifest.stats["new_stored"]
        prune.run_prune(repo, policy, [], gc_options=gc.GcOptions(pack_size=32 << 10))
        sizes.append(sum(size for _, size in repo.storage.list(layout.DATA_DIR)))
    names = repo.manifest_names()
    assert len(names) == 19  # 7 daily + 2 more weekly + 10 more monthly (hand-counted, 2026-02-04 back)
    assert max(sizes[365:]) <= 1.2 * sizes[365]  # once 12 months are kept, the size stays put
    assert sizes[-1] < written / 4  # most of what 400 nights wrote was freed
    assert sizes[-1] < 120_000 + 19 * 30_000  # one copy of the static part, the hot part per kept backup
    final = Repository.open(repo.storage)
    report = check(final, read_data=True)
    assert report.ok and not report.notes, (report.errors, report.notes)
    newest = max(names, key=lambda n: final.load_manifest(n).time_ns)
    assert restore(final, newest) == bytes(source)
