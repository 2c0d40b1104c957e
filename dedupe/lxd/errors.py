"""Errors of LXD runs and of backups that are not LXD's, with their exit codes."""

from __future__ import annotations

from dedupe.errors import DedupeError


class IncompleteRun(DedupeError):
    """Some objects of an LXD run failed (the others were done)."""

    exit_code = 69

    @classmethod
    def check(cls, action: str, run: str, outcomes: list[tuple[str, str | None]]) -> None:
        """Raise when any (what, error) of a run's outcomes has an error."""
        failed = [f"{what}: {error}" for what, error in outcomes if error is not None]
        if failed:
            raise cls(
                f"LXD {action} run {run[:12]}: {len(failed)} of {len(outcomes)} objects failed: " + "; ".join(failed)
            )


class NotAnLXDBackup(DedupeError):
    """The backup was not made by ``dedupe backup lxd``."""

    exit_code = 68
