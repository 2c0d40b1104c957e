"""What a gc run is asked (``GcOptions``) and what it did (``GcReport``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass

from dedupe.backup.writer import DEFAULT_PACK_SIZE

DEFAULT_MAX_UNUSED = 0.05  # restic's default --max-unused
TMP_MAX_AGE_S = 3600.0
LOCK_WAIT_S = 600.0


@dataclass
class GcOptions:
    max_unused: float = DEFAULT_MAX_UNUSED  # fraction of stored bytes left unreferenced in kept packs
    dry_run: bool = False
    pack_size: int = DEFAULT_PACK_SIZE
    lock_wait_s: float = LOCK_WAIT_S  # how long phase 2 waits for running backups
    tmp_max_age_s: float = TMP_MAX_AGE_S
    before_sweep: Callable[[], None] | None = None  # test hook: runs between phase 1 and phase 2


@dataclass
class GcReport:
    backups: int = 0
    packs_before: int = 0
    bytes_before: int = 0
    packs_after: int = 0
    bytes_after: int = 0
    packs_deleted: int = 0  # dead, repacked or not indexed
    bytes_deleted: int = 0
    packs_repacked: int = 0
    packs_written: int = 0
    bytes_written: int = 0
    chunks_referenced: int = 0
    unused_bytes_after: int = 0  # unreferenced blobs left in kept packs
    packs_kept_for_new_backups: int = 0
    segments_replaced: int = 0
    temp_files_removed: int = 0
    uploads_aborted: int = 0  # S3 multipart uploads left incomplete (FORMAT.md 11.2)
    markers_removed: int = 0
    dry_run: bool = False

    @property
    def freed(self) -> int:
        """What this gc removed less what it wrote. Not ``bytes_before - bytes_after``:
        packs that backups running meanwhile added are in the second and not the first,
        which made that difference negative (issue #18). A dry run writes nothing: its
        estimate is the difference, the rewritten packs' live bytes counted in after."""
        if self.dry_run:
            return self.bytes_before - self.bytes_after
        return self.bytes_deleted - self.bytes_written

    def to_json(self) -> dict[str, object]:
        return {**asdict(self), "freed": self.freed}
