"""Series of backups: what ``prune`` applies a retention policy to (``--group-by``).

Apart from ``dedupe.maintenance.prune`` so that the command line can offer the choices without
loading the prune engine at every start.
"""

from __future__ import annotations

from typing import Protocol

GROUP_BY = ("host,group", "group")  # what makes a series: the default, or the group alone


class InSeries(Protocol):
    @property
    def host(self) -> str: ...

    @property
    def group(self) -> str: ...


def series_of(backup: InSeries, group_by: str) -> tuple[str, str]:
    """The (host, group) a policy is applied to; the host is "" with ``--group-by group``."""
    return (backup.host if group_by == "host,group" else "", backup.group)


def describe_series(series: tuple[str, str]) -> str:
    host, group = series
    return f"{group} on {host}" if host else group
