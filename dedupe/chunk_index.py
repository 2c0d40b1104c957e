"""The in-memory chunk index: chunk id -> (pack number, offset, stored length, raw length).

A Python dict of tuples costs about 430 bytes per chunk; this keeps the bulk in
sorted numpy arrays (8-byte id prefix for the search, the full 32-byte id, four
u32 values: 56 bytes per chunk), fed either one entry at a time (a small dict,
merged in batches) or straight from index segments' packed entry tables, which
never become Python objects. Lookups are a binary search on the prefix, then a
check of the full id. The first location recorded for an id wins (FORMAT.md 7.2).
"""

from __future__ import annotations

from typing import Iterator

import numpy as np

from repo_format.ids import ID_LEN

Value = tuple[int, int, int, int]
MERGE_AT = 1 << 16
# A pack table entry as stored (FORMAT.md section 6.2): id, offset, stored length, raw length.
PACKED_ENTRY = np.dtype([("id", np.uint8, (ID_LEN,)), ("off", "<u4"), ("len", "<u4"), ("raw", "<u4")])


class ChunkIndex:
    def __init__(self) -> None:
        self.clear()

    def clear(self) -> None:
        self._prefix = np.empty(0, dtype=np.uint64)
        self._ids = np.empty((0, ID_LEN), dtype=np.uint8)
        self._values = np.empty((0, 4), dtype=np.uint32)
        self._pending: dict[bytes, Value] = {}
        self._batches: list[tuple[np.ndarray, np.ndarray]] = []  # (ids, values) not merged yet
        self._batched = 0

    def __len__(self) -> int:
        self.compact()
        return len(self._prefix) + len(self._pending)

    def _find(self, cid: bytes) -> int:
        p = np.uint64(int.from_bytes(cid[:8], "big"))
        i = int(np.searchsorted(self._prefix, p))
        n = len(self._prefix)
        while i < n and self._prefix[i] == p:
            if self._ids[i].tobytes() == cid:
                return i
            i += 1
        return -1

    def get(self, cid: bytes) -> Value | None:
        if self._batches:
            self.compact()
        hit = self._pending.get(cid)
        if hit is not None:
            return hit
        if not len(self._prefix):
            return None
        i = self._find(cid)
        if i < 0:
            return None
        v = self._values[i]
        return int(v[0]), int(v[1]), int(v[2]), int(v[3])

    def __contains__(self, cid: bytes) -> bool:
        if self._batches:
            self.compact()
        return cid in self._pending or (len(self._prefix) > 0 and self._find(cid) >= 0)

    def add(self, cid: bytes, value: Value) -> None:
        """Record a location unless the id already has one."""
        if cid in self:
            return
        self._pending[cid] = value
        if len(self._pending) >= MERGE_AT:
            self.compact()

    def add_many(self, entries: list[tuple[bytes, Value]]) -> None:
        """Record many locations (first location per id wins)."""
        if not entries:
            return
        ids = np.frombuffer(b"".join(cid for cid, _ in entries), dtype=np.uint8).reshape(-1, ID_LEN)
        values = np.array([v for _, v in entries], dtype=np.uint32).reshape(-1, 4)
        self._add_batch(ids, values)

    def add_packed(self, table: bytes, pack_number: int) -> None:
        """Record every entry of a pack's packed table (44-byte entries, FORMAT.md 6.2)."""
        rows = np.frombuffer(table, dtype=PACKED_ENTRY)
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
        parts_ids = [self._ids] + [b[0] for b in self._batches]
        parts_values = [self._values] + [b[1] for b in self._batches]
        if self._pending:
            parts_ids.append(np.frombuffer(b"".join(self._pending), dtype=np.uint8).reshape(-1, ID_LEN))
            parts_values.append(np.array(list(self._pending.values()), dtype=np.uint32).reshape(-1, 4))
        self._pending, self._batches, self._batched = {}, [], 0
        ids = np.concatenate(parts_ids)
        del parts_ids
        values = np.concatenate(parts_values)
        del parts_values
        prefix = ids[:, :8].copy().view(">u8").ravel().astype(np.uint64)
        order = np.argsort(prefix, kind="stable")
        prefix = prefix[order]
        ids = ids[order]
        values = values[order]
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
        for i in range(len(self._prefix)):
            v = self._values[i]
            yield self._ids[i].tobytes(), (int(v[0]), int(v[1]), int(v[2]), int(v[3]))
        yield from list(self._pending.items())

    def count_by_pack(self, packs: int) -> list[int]:
        """How many ids each pack number holds in this index."""
        self.compact()
        counts = np.bincount(self._values[:, 0], minlength=packs) if len(self._values) else np.zeros(packs, int)
        extra = [0] * packs
        for v in self._pending.values():
            extra[v[0]] += 1
        return [int(c) + e for c, e in zip(counts, extra)]

    def nbytes(self) -> int:
        return self._prefix.nbytes + self._ids.nbytes + self._values.nbytes
