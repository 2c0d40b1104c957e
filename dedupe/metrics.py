"""The repository as Prometheus metrics (text exposition format 0.0.4): ``dedupe stats
--format prometheus``, and ``--metrics-file F`` on ``backup``, ``prune`` and ``check``
for node_exporter's textfile collector (written atomically: a scrape never sees half).

Per series (group and host), of its newest backup: time, duration, original, new and
stored bytes; and the number of backups. Per group, per host and for the repository:
what ``stats`` says (backups, original, deduplicated and stored bytes, the ratio).
The last ``check`` of each scope (structure, read-data, read-data-subset): time,
result, problems found. Every figure is the one ``stats --json``/``list --json`` give.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dedupe import api


@dataclass
class Family:
    name: str
    help: str
    kind: str = "gauge"
    samples: list[tuple[dict[str, str], float]] = field(default_factory=list)

    def add(self, value: float, **labels: str) -> None:
        self.samples.append((labels, value))

    def render(self) -> str:
        lines = [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} {self.kind}"]
        for labels, value in self.samples:
            inner = ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items())
            lines.append(f"{self.name}{{{inner}}} {_number(value)}" if inner else f"{self.name} {_number(value)}")
        return "\n".join(lines)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(value: float) -> str:
    if isinstance(value, int) or float(value).is_integer():
        return str(int(value))
    return repr(float(value))


def check_scope_kind(scope: str) -> str:
    """``read-data-subset 1/7`` -> ``read-data-subset``: one series per kind of check."""
    return scope.split(" ", 1)[0]


def newest_per_series(backups: Iterable[api.BackupInfo]) -> dict[tuple[str, str], tuple[api.BackupInfo, int]]:
    """(group, host) -> its newest backup and how many it has."""
    out: dict[tuple[str, str], tuple[api.BackupInfo, int]] = {}
    for b in backups:
        key = (b.manifest.group, b.manifest.host)
        newest, count = out.get(key, (b, 0))
        if (b.manifest.time_ns, b.id) >= (newest.manifest.time_ns, newest.id):
            newest = b
        out[key] = (newest, count + 1)
    return out


def render(backups: Sequence[api.BackupInfo], stats: Any, checks: Sequence[dict[str, Any]],
           now: float | None = None) -> str:
    """The exposition text. ``stats``: an ``api.stats`` report; ``checks``: the check
    records, oldest first (``api.records_of(repo, "check")``)."""
    fams: list[Family] = []

    def family(name: str, text: str, kind: str = "gauge") -> Family:
        f = Family(name, text, kind)
        fams.append(f)
        return f

    last_time = family("dedupe_backup_last_timestamp_seconds", "When the newest backup of the series started.")
    last_duration = family("dedupe_backup_last_duration_seconds", "How long the newest backup of the series took.")
    last_original = family("dedupe_backup_last_original_bytes", "Size of what the newest backup of the series read.")
    last_new = family("dedupe_backup_last_new_bytes", "New data the newest backup of the series added (raw bytes).")
    last_new_stored = family("dedupe_backup_last_new_stored_bytes",
                             "New data the newest backup of the series added (stored, compressed bytes).")
    last_stored = family("dedupe_backup_last_stored_bytes",
                         "Stored size of everything the newest backup of the series references.")
    count = family("dedupe_backups", "Backups of the series (a group from one host).")
    for (group, host), (b, n) in sorted(newest_per_series(backups).items()):
        m, labels = b.manifest, {"group": group, "host": host}
        last_time.add(m.time_ns / 1e9, **labels)
        if "duration_ns" in m.stats:
            last_duration.add(m.stats["duration_ns"] / 1e9, **labels)
        last_original.add(m.size, **labels)
        last_new.add(m.stats.get("new_bytes", 0), **labels)
        last_new_stored.add(m.stats.get("new_stored", 0), **labels)
        last_stored.add(m.stats.get("stored_bytes", 0), **labels)
        count.add(n, **labels)

    for scope, usages in (("group", stats.groups), ("host", stats.hosts)):
        fb = family(f"dedupe_{scope}_backups", f"Backups of the {scope}.")
        fo = family(f"dedupe_{scope}_original_bytes", f"Original size of every backup of the {scope}.")
        fd = family(f"dedupe_{scope}_deduplicated_bytes", f"Distinct chunks the backups of the {scope} need (raw).")
        fs = family(f"dedupe_{scope}_stored_bytes", f"Stored (compressed) size of those chunks.")
        for key, u in sorted(usages.items()):
            fb.add(u.backups, **{scope: key})
            fo.add(u.original, **{scope: key})
            fd.add(u.deduplicated, **{scope: key})
            fs.add(u.stored, **{scope: key})

    total = stats.total
    for name, text, value in (
        ("dedupe_repository_backups", "Backups in the repository.", total.backups),
        ("dedupe_repository_groups", "Groups in the repository.", len({b.manifest.group for b in backups})),
        ("dedupe_repository_original_bytes", "Original size of every backup.", total.original),
        ("dedupe_repository_deduplicated_bytes", "Distinct chunks the backups need (raw bytes).",
         total.deduplicated),
        ("dedupe_repository_stored_bytes", "Stored (compressed) size of the chunks the backups need.", total.stored),
        ("dedupe_repository_deduplication_ratio", "Original size / deduplicated size.", round(total.ratio, 3)),
        ("dedupe_repository_pack_bytes", "Every pack in storage.", stats.repository_bytes),
        ("dedupe_repository_unreferenced_bytes", "Stored chunks no backup references (gc frees most of them).",
         stats.unreferenced_bytes),
    ):
        family(name, text).add(value)

    last_by_scope: dict[str, dict[str, Any]] = {}
    for rec in checks:
        last_by_scope[check_scope_kind(str(rec.get("scope", "structure")))] = rec
    ct = family("dedupe_check_last_timestamp_seconds", "When the last check of this scope ended.")
    cs = family("dedupe_check_last_success", "1 if the last check of this scope found the repository whole, else 0.")
    ce = family("dedupe_check_last_errors", "Problems the last check of this scope found.")
    cd = family("dedupe_check_last_damaged_packs", "Damaged packs the last check of this scope found.")
    for scope, rec in sorted(last_by_scope.items()):
        ct.add(float(rec.get("time", 0)), scope=scope)
        cs.add(1 if rec.get("ok") else 0, scope=scope)
        ce.add(int(rec.get("errors", 0)), scope=scope)
        cd.add(int(rec.get("damaged_packs", 0)), scope=scope)

    family("dedupe_metrics_timestamp_seconds", "When these metrics were computed.").add(
        round(now if now is not None else time.time(), 3))
    return "\n".join(f.render() for f in fams) + "\n"


def for_repository(repo: Any) -> str:
    """The metrics of an open repository (its index loaded)."""
    backups = api.list_backups(repo)
    return render(backups, api.stats(repo, backups=backups), api.records_of(repo, "check"))


def write_file(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically (a temporary file in the same directory,
    renamed over it), readable by node_exporter (mode 0644)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
