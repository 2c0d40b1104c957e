"""An LXD backup as tarball pieces for LXD's import, whichever path it took.

An export-based backup gives its original tarball (``verified_pieces``: the whole
stream's BLAKE3 checked before the last piece). A direct backup is a directory-tree
backup whose entry paths are the export's member names: its PAX tar (each chunk
verified against its id as it is read) is a tarball ``lxc import`` takes.
"""

from __future__ import annotations

from collections.abc import Iterator

from dedupe import api
from dedupe.lxd.stored import verified_pieces
from dedupe.progress import Progress, ProgressCallback
from dedupe.repository import Repository
from dedupe.restore.tree import iter_entries
from dedupe.sinks.pax_writer import pax_pieces
from repo_format import manifest


def tarball_pieces(repo: Repository, info: api.BackupInfo,
                   progress: ProgressCallback | None = None) -> Iterator[bytes | memoryview]:
    if info.manifest.kind != manifest.KIND_DIR:
        yield from verified_pieces(repo, info, progress)
        return
    done = 0
    entries = ((e, d) for e, d in iter_entries(repo, info.manifest) if e.path not in ("", "."))
    for piece in pax_pieces(entries):
        done += len(piece)
        if progress is not None:
            progress(Progress("restore", info.id[:12], done, None))
        yield piece
