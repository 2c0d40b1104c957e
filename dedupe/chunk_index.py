"""The in-memory chunk index: chunk id -> (pack number, offset, stored length, raw length).

A Python dict of tuples costs about 430 bytes per chunk; this keeps the bulk in
sorted numpy arrays (8-byte id prefix for the search, the full 32-byte id, four
u32 values: 56 bytes per chunk), fed either one entry at a time (a small dict,
merged in batches) or straight from index segments' packed entry tables, which
never become Python objects. Lookups are a binary search on the prefix, then a
check of the full id. The first location recorded for an id wins (FORMAT.md 7.2).

numpy is imported when the first arrays are made: an index that only ever holds the
small dict (a first backup into an empty repository) never loads it, and its import
is a third of the command line's start-up.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from repo_format.ids import ID_LEN
from repo_format.pack import ENTRY

if TYPE_CHECKING:
    import numpy as np

Value = tuple[int, int, int, int]
MERGE_AT = 1 << 16


@functools.cache
def load_numpy() -> Any:
    import numpy
    return numpy


@functools.cache
def packed_entry() -> np.dtype[Any]:
    """A pack table entry as stored (FORMAT.md section 6.2): id, offset, stored length, raw length."""
    np = load_numpy()
    return np.dtype([("id", np.uint8, (ID_LEN,)), ("off", "<u4"), ("len", "<u4"), ("raw", "<u4")])


def _permute_rows(a: np.ndarray, order: np.ndarray) -> None:
    """``a[:] = a[order]`` in place, one 8-byte column at a time, so the extra memory is
    one column (8 bytes per row), not a second copy of ``a`` (40 bytes per chunk for
    ids and values): opening a repository of a million chunks peaks lower."""
    columns = a.view(load_numpy().uint64)  # C-contiguous rows of a multiple of 8 bytes
    for c in range(columns.shape[1]):
        columns[:, c] = columns[:, c][order]


class ChunkIndex:
    def __init__(self) -> None:
        self.clear()

    def clear(self) -> None:
        self._prefix: np.ndarray | None = None  # with _ids and _values: None until the first merge
        self._ids: np.ndarray | None = None
        self._values: np.ndarray | None = None
        self._pending: dict[bytes, Value] = {}
        self._batches: list[tuple[np.ndarray, np.ndarray]] = []  # (ids, values) not merged yet
        self._batched = 0

    def __len__(self) -> int:
        self.compact()
        return self._merged() + len(self._pending)

    def _merged(self) -> int:
        return 0 if self._prefix is None else len(self._prefix)

    def _find(self, cid: bytes) -> int:
        prefix, ids = self._prefix, self._ids
        assert prefix is not None and ids is not None
        p = load_numpy().uint64(int.from_bytes(cid[:8], "big"))
        i = int(prefix.searchsorted(p))
        n = len(prefix)
        while i < n and prefix[i] == p:
            if ids[i].tobytes() == cid:
                return i
            i += 1
        return -1

    def get(self, cid: bytes) -> Value | None:
        if self._batches:
            self.compact()
        hit = self._pending.get(cid)
        if hit is not None:
            return hit
        if not self._merged():
            return None
        return self._merged_value(cid)

    def _merged_value(self, cid: bytes) -> Value | None:
        i = self._find(cid)
        if i < 0:
            return None
        assert self._values is not None
        v = self._values[i]
        return int(v[0]), int(v[1]), int(v[2]), int(v[3])

    def get_many(self, cids: list[bytes]) -> list[Value | None]:
        """``get`` of each id, in one vectorised binary search for the lot: a caller that
        looks up thousands of ids (a restore's chunk refs, a check's) pays for one numpy
        call, and gives up the GIL once, instead of once per id."""
        if self._batches:
            self.compact()
        pending = self._pending
        out: list[Value | None] = [None] * len(cids)
        rest: list[int] = []
        for i, cid in enumerate(cids):
            hit = pending.get(cid)
            if hit is not None:
                out[i] = hit
            elif len(cid) == ID_LEN:
                rest.append(i)
            elif self._merged():  # not an id at all (a damaged item): the lookup finds nothing
                out[i] = self._merged_value(cid)
        if not rest or not self._merged():
            return out
        at, exact_, shared_ = self._search(b"".join(cids[i] for i in rest))
        assert self._values is not None
        exact, shared = exact_.tolist(), shared_.tolist()
        rows = self._values[at].tolist()
        for j, i in enumerate(rest):
            if exact[j]:
                out[i] = tuple(rows[j])  # type: ignore[assignment]
            elif shared[j]:  # an 8-byte prefix shared by several ids: the slow path
                out[i] = self._merged_value(cids[i])
        return out

    def _search(self, joined: bytes) -> tuple[Any, Any, Any]:
        """One vectorised binary search of the merged ids for ``joined`` (ids of ID_LEN
        bytes back to back): the row each lands on, whether that row is the id, and
        whether it shares the id's 8-byte prefix (then the id may sit next to it)."""
        np = load_numpy()
        prefix, ids = self._prefix, self._ids
        assert prefix is not None and ids is not None
        full = np.frombuffer(joined, dtype=np.uint8).reshape(-1, ID_LEN)
        wanted = full[:, :8].copy().view(">u8").ravel().astype(np.uint64)
        at = np.minimum(prefix.searchsorted(wanted), len(prefix) - 1)
        return at, (ids[at] == full).all(axis=1), prefix[at] == wanted

    def stored_lengths(self, cids: list[bytes]) -> list[int | None]:
        """The stored length of each id (None where the index lacks it): ``get`` of
        each, in one vectorised search that builds no value tuples (a night's reused
        chunks, tens of thousands at a time, cost a fifth of ``get_many``'s)."""
        if self._batches:
            self.compact()
        if not cids or not self._merged() or any(len(c) != ID_LEN for c in cids):
            return [None if v is None else v[2] for v in self.get_many(cids)]
        np = load_numpy()
        at, exact, shared = self._search(b"".join(cids))
        assert self._values is not None
        out: list[int | None] = np.where(exact, self._values[at, 2], -1).tolist()
        for i in np.flatnonzero(~exact).tolist():
            v = self._merged_value(cids[i]) if shared[i] else None
            out[i] = None if v is None else v[2]
        pending = self._pending
        if pending:  # as in ``get``: an entry not merged yet wins
            for i, cid in enumerate(cids):
                hit = pending.get(cid)
                if hit is not None:
                    out[i] = hit[2]
        return out

    def __contains__(self, cid: bytes) -> bool:
        if self._batches:
            self.compact()
        return cid in self._pending or (self._merged() > 0 and self._find(cid) >= 0)

    def add(self, cid: bytes, value: Value) -> None:
        """Record a location unless the id already has one."""
        if cid in self:
            return
        self._pending[cid] = value
        if len(self._pending) >= MERGE_AT:
            self.compact()

    def add_many(self, entries: list[tuple[bytes, Value]]) -> None:
        """Record many locations (first location per id wins)."""
        if len(entries) + len(self._pending) < MERGE_AT:  # small: the dict (numpy not needed yet)
            for cid, value in entries:
                self.add(cid, value)
            return
        np = load_numpy()
        ids = np.frombuffer(b"".join(cid for cid, _ in entries), dtype=np.uint8).reshape(-1, ID_LEN)
        values = np.array([v for _, v in entries], dtype=np.uint32).reshape(-1, 4)
        self._add_batch(ids, values)

    def add_packed(self, table: bytes, pack_number: int) -> None:
        """Record every entry of a pack's packed table (44-byte entries, FORMAT.md 6.2)."""
        if self._ids is None and not self._batches and len(table) // ENTRY.size + len(self._pending) < MERGE_AT:
            for cid, off, length, raw in ENTRY.iter_unpack(table):  # small: the dict (numpy not needed yet)
                self.add(cid, (pack_number, off, length, raw))
            return
        np = load_numpy()
        rows = np.frombuffer(table, dtype=packed_entry())
        if not len(rows):
            return
        values = np.empty((len(rows), 4), dtype=np.uint32)
        values[:, 0] = pack_number
        values[:, 1], values[:, 2], values[:, 3] = rows["off"], rows["len"], rows["raw"]
        self._add_batch(np.ascontiguousarray(rows["id"]), values)

    def _add_batch(self, ids: np.ndarray, values: np.ndarray) -> None:
        self._batches.append((ids, values))
        self._batched += len(ids)
        if self._batched >= 1 << 20:
            self.compact()

    def compact(self) -> None:
        """Merge pending additions into the sorted arrays, keeping the first location
        of each id (existing entries first, then additions in the order they came)."""
        if not self._pending and not self._batches:
            return
        np = load_numpy()
        parts_ids = [b[0] for b in self._batches]
        parts_values = [b[1] for b in self._batches]
        if self._ids is not None and self._values is not None:
            parts_ids.insert(0, self._ids)
            parts_values.insert(0, self._values)
        if self._pending:
            parts_ids.append(np.frombuffer(b"".join(self._pending), dtype=np.uint8).reshape(-1, ID_LEN))
            parts_values.append(np.array(list(self._pending.values()), dtype=np.uint32).reshape(-1, 4))
        self._pending, self._batches, self._batched = {}, [], 0
        self._ids = self._values = self._prefix = None  # the parts hold the old arrays until merged
        ids = np.concatenate(parts_ids)
        del parts_ids
        values = np.concatenate(parts_values)
        del parts_values
        prefix = ids[:, :8].copy().view(">u8").ravel().astype(np.uint64)
        order = np.argsort(prefix, kind="stable")
        prefix = prefix[order]
        _permute_rows(ids, order)
        _permute_rows(values, order)
        del order
        eq = np.nonzero(prefix[1:] == prefix[:-1])[0] + 1
        if len(eq):
            dup = [int(r) for r in eq
                   if any((ids[r] == ids[j]).all() for j in range(r - 1, -1, -1) if prefix[j] == prefix[r])]
            if dup:
                keep = np.ones(len(prefix), dtype=bool)
                keep[dup] = False
                ids, values, prefix = ids[keep], values[keep], prefix[keep]
        self._ids, self._values, self._prefix = np.ascontiguousarray(ids), values, prefix

    def items(self) -> Iterator[tuple[bytes, Value]]:
        self.compact()
        if self._ids is not None and self._values is not None:
            for i in range(len(self._ids)):
                v = self._values[i]
                yield self._ids[i].tobytes(), (int(v[0]), int(v[1]), int(v[2]), int(v[3]))
        yield from list(self._pending.items())

    def count_by_pack(self, packs: int) -> list[int]:
        """How many ids each pack number holds in this index."""
        self.compact()
        counts = [0] * packs
        if self._values is not None and len(self._values):
            counts = [int(c) for c in load_numpy().bincount(self._values[:, 0], minlength=packs)]
        for v in self._pending.values():
            counts[v[0]] += 1
        return counts

    def nbytes(self) -> int:
        return sum(a.nbytes for a in (self._prefix, self._ids, self._values) if a is not None)
