"""``stats`` (and so ``stats --format prometheus`` and ``--metrics-file``) reads each
distinct item chunk once however many backups share it, sizes each chunk from one pass
over the index, and gives the figures a backup-by-backup walk of every item stream gives."""

from __future__ import annotations

import io
from typing import Any

import pytest

from dedupe import api
from dedupe.backup.session import BackupSession
from dedupe.backup.stream import backup_stream
from dedupe.maintenance import stats
from dedupe.read import iter_items
from dedupe.repository import Repository
from repo_format import items
from repo_format.errors import FormatError


def _night(repo: Repository, group: str, data: bytes, host: str = "h") -> None:
    backup_stream(BackupSession(repo, kind="stream", group=group, host=host), io.BytesIO(data))


def _repo(repo: Repository) -> Repository:
    same = bytes(range(256)) * 800
    for _ in range(3):
        _night(repo, "etc", same)  # the same item chunks three times
    _night(repo, "etc", same + b"changed")
    _night(repo, "db", b"x" * 5000 + same[:1000], host="other")
    return repo


def _walked(repo: Repository) -> dict[str, Any]:
    """The figures the old way: every backup's item stream decoded on its own."""
    refs = {}
    for name in repo.manifest_names():
        m = repo.load_manifest(name)
        mine = {cid for cid, _ in m.items}
        for item in iter_items(repo, m):
            mine.update(ref[0] for ref in items.chunk_refs(item))
        refs[name] = mine
    every = set().union(*refs.values())
    only = {n: mine - set().union(*(r for o, r in refs.items() if o != n)) for n, mine in refs.items()}
    return {"deduplicated": sum(repo.locate(c).raw_len for c in every),
            "stored": sum(repo.locate(c).length for c in every),
            "unique": {n: sum(repo.locate(c).raw_len for c in cs) for n, cs in only.items()},
            "unreferenced": sum(loc.length for c, loc in repo.iter_index() if c not in every)}


def _figures(report: stats.StatsReport) -> dict[str, Any]:
    return {"deduplicated": report.total.deduplicated, "stored": report.total.stored,
            "unique": {b.id: b.unique_bytes for b in report.backups}, "unreferenced": report.unreferenced_bytes}


def test_each_distinct_item_chunk_is_read_once(mem_repo: Repository, monkeypatch: pytest.MonkeyPatch) -> None:
    repo = _repo(mem_repo)
    read: list[bytes] = []
    real = stats.read_chunks

    def counted(r: Repository, refs: Any) -> Any:
        refs = list(refs)
        read.extend(cid for cid, _ in refs)
        return real(r, refs)

    monkeypatch.setattr(stats, "read_chunks", counted)
    report = stats.compute(repo)
    distinct = {cid for n in repo.manifest_names() for cid, _ in repo.load_manifest(n).items}
    assert sorted(read) == sorted(distinct) and len(distinct) < 5  # three backups share theirs
    assert _figures(report) == _walked(repo)
    assert report.total.backups == 5 and report.groups["etc"].backups == 4 and report.hosts["other"].backups == 1


def test_given_manifests_are_not_loaded_again(mem_repo: Repository, monkeypatch: pytest.MonkeyPatch) -> None:
    repo = _repo(mem_repo)
    every = api.list_backups(repo)
    expected = api.stats(repo).to_json()
    monkeypatch.setattr(repo, "load_manifest", lambda name: pytest.fail(f"loaded {name} again"))
    assert api.stats(repo, backups=every).to_json() == expected


def test_an_item_chunk_that_does_not_decode_alone_has_its_stream_decoded_whole(
        mem_repo: Repository, monkeypatch: pytest.MonkeyPatch) -> None:
    """(Chunks end between items, FORMAT.md 9.1; one that does not is read as the stream whole.)"""
    repo = _repo(mem_repo)
    expected = stats.compute(repo).to_json()
    real = items.decode_items

    def alone_fails(chunks: Any, what: str) -> Any:
        if what == "item chunk":
            raise FormatError("item chunk: item stream ends inside an item")
        return real(chunks, what)

    monkeypatch.setattr(stats.items, "decode_items", alone_fails)
    assert stats.compute(repo).to_json() == expected
