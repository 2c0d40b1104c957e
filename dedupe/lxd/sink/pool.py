"""Disaster recovery on this machine: a container's files laid out where its ``dir``
pool keeps them (``containers/[<project>_]<name>`` and ``containers-snapshots/...``),
then LXD's recovery (``/internal/recover/validate`` and ``/import``) rebuilds its
database records from ``backup.yaml``. LXD's recovery imports every unknown volume it
finds on that pool, not only this one. Directories already there (``--force``) are set
aside while this runs and come back when it fails."""

from __future__ import annotations

import contextlib
import functools
import os
import secrets
import shutil
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Final

from dedupe.entries import FILE, HARDLINK, Entry
from dedupe.sinks.directory import DataSource
from dedupe.lxd.errors import LXDObjectExists, LXDRecoverConfirm, LXDRestoreError
from dedupe.lxd.sink.records import exists
from dedupe.lxd.sink.rename import YamlChanges, rewrite_yaml
from dedupe.lxd.api.client import LXDClient


def pool_path(path: str, dirname: str) -> str | None:
    """Where tar member ``path`` of a container backup goes in a dir pool (None: nowhere)."""
    if path in ("backup", "backup/index.yaml", "backup/snapshots"):
        return None
    head, _, rest = path.partition("/")
    if head == "backup":
        top, _, below = rest.partition("/")
        if top == "container":
            return f"containers/{dirname}" + (f"/{below}" if below else "")
        if top == "snapshots":
            return f"containers-snapshots/{dirname}/{below}"
    raise LXDRestoreError(f"--recover restores containers; {path!r} is not part of a container backup")


def recover_entries(
    entries: Iterable[tuple[Entry, DataSource]], dirname: str, changes_for: Callable[[str], YamlChanges | None]
) -> Iterator[tuple[Entry, DataSource]]:
    for entry, data in entries:
        target = pool_path(entry.path, dirname)
        if target is None:
            continue
        changes = changes_for(entry.path) if entry.type == FILE and data is not None else None
        if changes and data is not None:
            content = rewrite_yaml(b"".join(data()), changes)
            entry = entry.replace(size=len(content))
            data = functools.partial(iter, [content])
        link = pool_path(entry.link, dirname) if entry.type == HARDLINK else None
        yield entry.replace(path=target, link=link or entry.link), data


def prepare_pool(client: LXDClient, pool: str, name: str, project: str, force: bool) -> tuple[Path, str, list[Path]]:
    """Check that ``pool`` is a dir pool, LXD has no instance ``name``, and its
    directories are free (or ``force``: ``set_aside`` moves them while the recovery
    runs). Returns the pool's directory, the instance's directory name in it, and its
    two directories (the instance's, its snapshots')."""
    pool_record = client.storage_pool(pool)
    if pool_record.get("driver") != "dir":
        raise LXDRestoreError(f"--recover lays files out for dir pools; pool {pool!r} is {pool_record.get('driver')}")
    if exists(lambda: client.instance(name, project)) is not None:
        raise LXDObjectExists(
            f"instance {name!r} exists in project {project} on {client.endpoint}: --recover is "
            "for instances LXD lost; restore without --recover (and --force) to replace it"
        )
    source = Path(pool_record["config"]["source"])
    dirname = name if project == "default" else f"{project}_{name}"
    dirs = [source / "containers" / dirname, source / "containers-snapshots" / dirname]
    if any(os.path.lexists(d) for d in dirs) and not force:
        raise LXDObjectExists(f"{dirs[0]} (or its snapshots) exists in pool {pool!r}; use --force to replace it")
    return source, dirname, dirs


ASIDE_PREFIX: Final = ".dedupe-aside-"


@contextlib.contextmanager
def set_aside(source: Path, dirs: list[Path]) -> Iterator[None]:
    """Run the body (which lays a container out at ``dirs``) with what was at ``dirs``
    (the old directories ``--force`` replaces) moved into ``<pool>/.dedupe-aside-<6
    hex>/``: out of the directories LXD's recovery scans, on the same file system
    (renames, nothing copied). When the body fails, what it laid out is removed and the
    old directories move back; when it succeeds, they are deleted. A killed recovery
    leaves them there (README)."""
    aside = source / f"{ASIDE_PREFIX}{secrets.token_hex(3)}"
    moved: list[tuple[Path, Path]] = []
    try:
        for d in dirs:
            if os.path.lexists(d):
                kept = aside / d.relative_to(source)
                kept.parent.mkdir(parents=True, exist_ok=True)
                os.rename(d, kept)
                moved.append((d, kept))
        yield
    except BaseException:
        for d in dirs:
            shutil.rmtree(d, ignore_errors=True)
        for d, kept in moved:
            os.rename(kept, d)
        shutil.rmtree(aside, ignore_errors=True)
        raise
    shutil.rmtree(aside, ignore_errors=True)


def unknown_volumes(client: LXDClient, pool: str) -> list[dict[str, object]]:
    """The volumes LXD's recovery would import from ``pool`` (it validates, imports nothing)."""
    report = client.recover_validate([{"name": pool}])
    return list(report.get("UnknownVolumes") or report.get("unknown_volumes") or [])


def describe_volume(v: dict[str, object]) -> str:
    return f"{v.get('type')} {v.get('name')} (project {v.get('project')})"


def check_others(others: list[dict[str, object]], pool: str, name: str, yes: bool) -> None:
    """LXD's recovery imports every unknown volume of the pool: more than the named
    instance only with ``yes``."""
    if others and not yes:
        raise LXDRecoverConfirm(
            f"LXD's recovery imports every unknown volume in pool {pool!r}: besides {name!r} it would also bring "
            f"back {', '.join(map(describe_volume, others))}; give --yes to recover them all, or remove them first"
        )


def lxd_recover(client: LXDClient, pool: str, name: str, project: str, yes: bool = False) -> list[str]:
    """Validate and import; returns the other volumes LXD recovered along with ours
    (refused unless ``yes`` when there are any)."""
    pools = [{"name": pool}]
    report = client.recover_validate(pools)
    unknown = report.get("UnknownVolumes") or report.get("unknown_volumes") or []
    missing = report.get("DependencyErrors") or report.get("dependency_errors") or []
    ours = [v for v in unknown if v.get("name") == name and v.get("project") == project]
    if not ours:
        raise LXDRestoreError(f"LXD's recovery does not find instance {name!r} of project {project} in pool {pool!r}")
    if missing:
        raise LXDRestoreError(
            f"LXD's recovery of {name!r} needs {'; '.join(map(str, missing))} "
            "(use --with-deps to recreate them from the same run)"
        )
    others = [v for v in unknown if v not in ours]
    check_others(others, pool, name, yes)
    client.recover_import(pools)
    return [describe_volume(v) for v in others]
