"""Disaster recovery of one container on this machine (``dedupe restore --to-lxd ID
--recover``): its files from the repository laid out in its ``dir`` pool, then LXD's
own recovery (``dedupe.lxd.sink.pool``). That recovery imports every unknown volume of
the pool: when there is any besides the named instance, it is refused (listing them)
unless ``opts.yes``, before anything is laid out."""

from __future__ import annotations

import os
from collections.abc import Callable

from dedupe import api
from dedupe.locking import locked
from dedupe.lxd.restore import RestoredObject, RestoreOptions, Restorer
from dedupe.lxd.stored import lxd_meta
from dedupe.repository import Repository
from dedupe.read import WrongBackupKind
from dedupe.restore.tree import iter_entries
from dedupe.sinks.directory import restore_tree
from dedupe.lxd.errors import LXDRestoreError
from dedupe.lxd.sink.objects import start_instance
from dedupe.lxd.sink.pool import check_others, lxd_recover, prepare_pool, recover_entries, set_aside, unknown_volumes
from dedupe.lxd.sink.rename import yaml_changes
from dedupe.lxd.api.client import LXDClient


def recover_instance(
    repo: Repository,
    client: LXDClient,
    info: api.BackupInfo,
    opts: RestoreOptions,
    on_warning: Callable[[str], None] | None = None,
) -> list[RestoredObject]:
    """Lay a container backup out in its dir pool and let LXD recover it (see
    ``dedupe.lxd.sink.pool``). Files laid out by a recovery that then fails are removed,
    and the directories ``--force`` replaces come back as they were."""
    meta = lxd_meta(info)
    if meta["kind"] != "instance":
        raise WrongBackupKind(f"backup {info.id[:12]} is an LXD {meta['kind']}: --recover restores instances")
    if client.socket_path is None:
        raise LXDRestoreError(
            "--recover writes into the storage pool on this machine: it needs the local LXD "
            f"socket, not {client.endpoint}"
        )
    restore = Restorer(repo, client, opts)
    name, project = restore.target(meta)
    assert project is not None
    pool = opts.pool or str(meta.get("pool") or "default")
    source, dirname, dirs = prepare_pool(client, pool, name, project, opts.force)
    # LXD's recovery is pool-wide: say what else it would bring back before writing anything
    check_others(unknown_volumes(client, pool), pool, name, opts.yes)
    with locked(repo, "restore"), restore.created_undone_on_failure() as created:
        done = restore.deps(info, meta, project, created)
        new_name = name if name != meta["name"] else None
        new_project = project if project != meta.get("project") else None
        with set_aside(source, dirs):  # a failure removes what was laid out and puts the old back
            entries = recover_entries(
                iter_entries(repo, info.manifest), dirname, lambda path: yaml_changes(path, new_name, new_project)
            )
            result = restore_tree(source, entries, on_warning=on_warning, numeric_owner=True)
            if os.path.isdir(dirs[1]):
                os.chmod(dirs[1], 0o700)
            others = lxd_recover(client, pool, name, project, opts.yes)
    obj = RestoredObject("instance", project, name, info.id, "recovered", warnings=result.warnings)
    if opts.start:
        start_instance(client, name, project, "was recovered")
        obj.notes.append("started (--start)")
    obj.also = others
    return [*done, obj]
