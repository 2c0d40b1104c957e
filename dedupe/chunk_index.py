"""The in-memory chunk index: chunk id -> (pack number, offset, stored length, raw length).

A Python dict of tuples costs about 430 bytes per chunk; this keeps the bulk in
sorted numpy arrays (8-byte id prefix for the search, the full 32-byte id, four
u32 values: 56 bytes per chunk) plus a small dict for recent additions that is
merged in batches. Lookups are a binary search on the prefix, then a check of the
full id. The first location recorded for an id wins (FORMAT.md section 7.2).
"""

from __future__ import annotations

from typing import Iterator

import numpy as np

from repo_format.ids import ID_LEN

Value = tuple[int, int, int, int]
MERGE_AT = 1 << 16


class ChunkIndex:
    def __init__(self) -> None:
        self.clear()

    def clear(self) -> None:
        self._prefix = np.empty(0, dtype=np.uint64)
        self._ids = np.empty((0, ID_LEN), dtype=np.uint8)
        self._values = np.empty((0, 4), dtype=np.uint32)
        self._pending: dict[bytes, Value] = {}

    def __len__(self) -> int:
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
        return cid in self._pending or (len(self._prefix) > 0 and self._find(cid) >= 0)

    def add(self, cid: bytes, value: Value) -> None:
        """Record a location unless the id already has one."""
        if cid in self:
            return
        self._pending[cid] = value
        if len(self._pending) >= MERGE_AT:
            self.compact()

    def add_many(self, entries: list[tuple[bytes, Value]]) -> None:
        """Bulk load (e.g. a whole index segment): first location per id wins."""
        for cid, value in entries:
            if cid not in self._pending:
                self._pending[cid] = value
        if len(self._pending) >= MERGE_AT:
            self.compact()

    def compact(self) -> None:
        """Merge the pending additions into the sorted arrays."""
        if not self._pending:
            return
        new_ids = np.frombuffer(b"".join(self._pending), dtype=np.uint8).reshape(-1, ID_LEN)
        new_values = np.array(list(self._pending.values()), dtype=np.uint32).reshape(-1, 4)
        self._pending = {}
        ids = np.concatenate([self._ids, new_ids])
        values = np.concatenate([self._values, new_values])
        prefix = ids[:, :8].copy().view(">u8").ravel().astype(np.uint64)
        order = np.argsort(prefix, kind="stable")  # existing entries (first) win among equal ids
        ids, values, prefix = ids[order], values[order], prefix[order]
        # drop later duplicates of an id (bulk loads may repeat an id across segments)
        if len(prefix) > 1:
            same = np.zeros(len(prefix), dtype=bool)
            eq_prefix = prefix[1:] == prefix[:-1]
            if eq_prefix.any():
                rows = np.nonzero(eq_prefix)[0] + 1
                dup = [r for r in rows if any((ids[r] == ids[j]).all() for j in range(r - 1, -1, -1)
                                              if prefix[j] == prefix[r])]
                same[dup] = True
                keep = ~same
                ids, values, prefix = ids[keep], values[keep], prefix[keep]
        self._ids, self._values, self._prefix = np.ascontiguousarray(ids), values, prefix

    def items(self) -> Iterator[tuple[bytes, Value]]:
        for i in range(len(self._prefix)):
            v = self._values[i]
            yield self._ids[i].tobytes(), (int(v[0]), int(v[1]), int(v[2]), int(v[3]))
        yield from list(self._pending.items())

    def nbytes(self) -> int:
        return self._prefix.nbytes + self._ids.nbytes + self._values.nbytes
