"""Series of backups: what ``prune`` applies a retention policy to (``--group-by``).

Apart from ``dedupe.maintenance.prune`` so that the command line can offer the choices without
loading the prune engine at every start.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Protocol

GROUP_BY = ("host,group", "group")  # what makes a series: the default, or the group alone


class InSeries(Protocol):
    @property
    def host(self) -> str: ...

    @property
    def group(self) -> str: ...


_LXD_FULL_GROUP = re.compile(r"^(lxd/[^/]+/)(instance|volume)(/.*)$")


def series_group(group: str, meta: Mapping[str, Any]) -> str:
    """The group whose series a backup belongs to: its own, except for the instance-only
    LXD backups made before they had groups of their own (``backup lxd --instance-only``
    stored them in the full backups' ``lxd/<project>/instance/<name>``): they count as
    ``lxd/<project>/instance-only/<name>`` (``volume-only`` for volumes), the group such
    backups get now, so that retention never keeps them in place of full backups."""
    lxd = meta.get("lxd")
    if isinstance(lxd, dict) and lxd.get("instance_only") is True:
        m = _LXD_FULL_GROUP.match(group)
        if m:
            return f"{m[1]}{m[2]}-only{m[3]}"
    return group


def series_of(backup: InSeries, group_by: str) -> tuple[str, str]:
    """The (host, group) a policy is applied to; the host is "" with ``--group-by group``.
    The group is the backup's ``series`` when it has one (``series_group``)."""
    return (backup.host if group_by == "host,group" else "", getattr(backup, "series", "") or backup.group)


def describe_series(series: tuple[str, str]) -> str:
    host, group = series
    return f"{group} on {host}" if host else group
