"""The root of every error ``dedupe`` reports, and the table of exit codes.

Each error class is defined next to the code that raises it and subclasses
``DedupeError`` with its own ``exit_code``. The CLI prints ``str(error)`` as one line
(``dedupe: <message>``) and exits with that code; it never prints a traceback.

Exit codes (README, "Exit codes", repeats this table):

| code  | meaning |
|-------|---------|
| 0     | success |
| 1     | unexpected internal error (a bug: please report it) |
| 2     | usage error (bad options, from click) |
| 3     | finished with warnings (files changed or vanished while being read) |
| 10-19 | repository: not found, not a repository, newer format, locked, exists |
| 20-29 | integrity: corrupt or missing objects, failed check, checksum mismatch |
| 30-39 | backups: unknown or ambiguous id, wrong kind for the restore target |
| 40-49 | tar input: malformed, truncated, hostile member names |
| 50-59 | directories: unreadable source, unsafe or failed restore |
| 60-69 | LXD: unreachable, refused, operation failed, partial run |
| 70-79 | sources: input file missing or unreadable |
| 80-89 | retention and gc: bad policy, would remove a whole group, damaged repository, protected |
"""

from __future__ import annotations


class DedupeError(Exception):
    """An error with a one-line message for the user and an exit code."""

    exit_code: int = 1


class SourceError(DedupeError):
    """The input to back up cannot be read (missing file, read error)."""

    exit_code = 70
