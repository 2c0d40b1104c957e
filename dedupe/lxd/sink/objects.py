"""Instances, custom volumes and images back into LXD, from streams of byte pieces.

Instances and volumes: the backup tarball is streamed straight into LXD's import API
(no temporary copy); when the pieces stop with an error, the upload is cut and LXD's
import fails, leaving nothing. ``pool`` only sets where LXD puts them; the pool record
inside ``backup.yaml`` is refreshed by LXD at the next change.

Replacing (``force``) never risks the original: the backup is imported under a
temporary name (``temp_name``), checked, and only then is the original stopped (if it
runs), deleted, the copy renamed to its name and started again (unless ``start`` is
False: ``--no-start``). Anything that fails
before the delete removes the copy and leaves the original as it was (running again if
it was stopped for the delete). A restore killed midway leaves the copy under its
temporary name, which says what it is; nothing deletes such objects by itself.

Images: re-imported with the same fingerprint, which LXD checks. The same fingerprint
is the same content, so an image that is there is kept (``force`` brings its record and
aliases back); aliases that point at other images are moved only once the image is in.
"""

from __future__ import annotations

import contextlib
import secrets
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Final

from dedupe.lxd.errors import LXDError, LXDObjectExists, LXDOperationFailed, LXDReplaceIncomplete, LXDRestoreError
from dedupe.lxd.sink.records import exists
from dedupe.lxd.sink.rename import rewrite_tar_members, yaml_changes
from dedupe.lxd.api.client import LXDClient
from dedupe.lxd.api.records import Record

Pieces = Iterable[bytes | memoryview]

TEMP_MARK: Final = "-dedupe-"  # <name>-dedupe-<6 hex>: the copy a --force restore imports first
MAX_NAME: Final = 63  # LXD's longest instance name (a host name)


@dataclass(frozen=True)
class Imported:
    """What a restore did to one object (created, replaced, updated) and what the user
    should hear about it (an instance stopped and started again)."""

    action: str
    notes: tuple[str, ...] = ()


def temp_name(name: str) -> str:
    """``<name>-dedupe-<6 hex>``, the name cut so the whole fits LXD's 63 characters."""
    suffix = f"{TEMP_MARK}{secrets.token_hex(3)}"
    return name[: MAX_NAME - len(suffix)] + suffix


def existing(client: LXDClient, kind: str, name: str, project: str | None, get: Callable[[], Any],
             force: bool) -> Any | None:
    """The record of the object of that name, None when there is none; refused unless
    ``force``."""
    current = exists(get)
    if current is not None and not force:
        raise LXDObjectExists(
            f"{kind} {name!r} exists in project {project} on {client.endpoint}; use --force to replace it"
        )
    return current


@contextlib.contextmanager
def removed_on_failure(remove: Callable[[], None]) -> Iterator[None]:
    """Run the body; when it fails, ``remove()`` what it made. Best effort: the body's
    error is the one to report (a copy whose import failed is usually not there)."""
    try:
        yield
    except BaseException:
        with contextlib.suppress(LXDError):
            remove()
        raise


def check_snapshots(kind: str, name: str, have: list[str], want: list[str] | None) -> None:
    """The imported copy has the snapshots the backup recorded (``want`` None: not
    recorded, nothing to compare)."""
    if want is not None and sorted(have) != sorted(want):
        raise LXDRestoreError(
            f"the {kind} imported as {name!r} has snapshots {sorted(have)}, the backup {sorted(want)}; "
            "the original was left as it was"
        )


def replace_by_copy(kind: str, where: str, name: str, temp: str, delete_old: Callable[[], None],
                    delete_copy: Callable[[], None], rename_copy: Callable[[], None]) -> None:
    """Delete the original, then give the copy its name. A failed delete leaves the
    original (the copy is removed); a failed rename, after the delete, says where the
    copy is: nothing can bring the original back then."""
    with removed_on_failure(delete_copy):
        delete_old()
    try:
        rename_copy()
    except LXDError as e:
        raise LXDReplaceIncomplete(
            f"{kind} {name!r} {where} was deleted to be replaced, but renaming the restored copy {temp!r} "
            f"to {name!r} failed: {e}; rename it by hand"
        ) from e


def import_volume(client: LXDClient, pieces: Pieces, pool: str, name: str, project: str | None, force: bool,
                  snapshots: list[str] | None = None) -> Imported:
    """A custom volume from its backup tarball (``snapshots``: the names it must come
    with), replacing one of that name with ``force``."""
    c = client
    current = existing(c, "volume", name, project, lambda: c.custom_volume(pool, name, project), force)
    if current is None:
        c.import_custom_volume(pool, pieces, name=name, project=project)
        return Imported("created")
    where = f"in pool {pool}, project {project} on {c.endpoint}"
    users = current.get("used_by") or []
    if users:  # LXD refuses to delete it: say so before sending the whole volume
        raise LXDObjectExists(
            f"volume {name!r} {where} is used by {', '.join(map(str, users))}; detach it to replace it"
        )
    temp = temp_name(name)
    with removed_on_failure(lambda: c.delete_custom_volume(pool, temp, project)):
        c.import_custom_volume(pool, pieces, name=temp, project=project)
        have = [s["name"].rsplit("/", 1)[-1] for s in c.volume_snapshots(pool, temp, project)]
        check_snapshots("volume", temp, have, snapshots)
    replace_by_copy(
        "volume", where, name, temp,
        lambda: c.delete_custom_volume(pool, name, project),
        lambda: c.delete_custom_volume(pool, temp, project),
        lambda: c.rename_custom_volume(pool, temp, name, project),
    )
    return Imported("replaced")


def import_instance(
    client: LXDClient,
    pieces: Pieces,
    name: str,
    project: str,
    pool: str | None,
    source: tuple[str, str | None],
    force: bool,
    snapshots: list[str] | None = None,
    start: bool | None = None,
    fresh: bool = False,
) -> Imported:
    """An instance from its backup tarball, renamed inside when ``name`` or ``project``
    differ from ``source`` (the backed-up name and project); ``snapshots``: the names it
    must come with. With ``force`` it replaces an instance of that name. ``start``: True
    starts it, False leaves it stopped, None (the default) starts it only when it
    replaces a running instance. ``fresh``: a copy, given an identity of its own
    (``fresh_identity``) before it is started."""
    c = client
    current = existing(c, "instance", name, project, lambda: c.instance(name, project), force)
    new_name = name if name != source[0] else None
    new_project = project if project != source[1] else None
    if new_name or new_project:
        pieces = rewrite_tar_members(pieces, lambda path: yaml_changes(path, new_name, new_project))
    if current is None:
        c.import_instance(pieces, name=name, pool=pool, project=project)
        notes = fresh_identity(c, name, project) if fresh else ()
        if not start:
            return Imported("created", notes)
        start_instance(c, name, project, "was restored")
        return Imported("created", (*notes, "started (--start)"))
    # The copy's files keep naming the final instance: LXD's rename rewrites only the
    # instance's own backup.yaml, not its snapshots' (lxd-facts.md 2.3 for why they matter)
    temp = temp_name(name)
    with removed_on_failure(lambda: c.delete_instance(temp, project)):
        c.import_instance(pieces, name=temp, pool=pool, project=project)
        check_snapshots("instance", temp, [s["name"] for s in c.snapshots(temp, project)], snapshots)
        notes = fresh_identity(c, temp, project) if fresh else ()
    done = swap_instance(c, name, temp, project, start)
    return Imported(done.action, (*notes, *done.notes))


IDENTITY_KEYS: Final = ("volatile.uuid", "volatile.uuid.generation", "volatile.cloud-init.instance-id")


def fresh_identity(client: LXDClient, name: str, project: str) -> tuple[str, ...]:
    """Give an imported copy an identity of its own, as ``lxc copy`` does: new
    ``volatile.uuid`` (and VM generation id), cloud-init instance id and MAC addresses
    (``volatile.<nic>.hwaddr``, in LXD's 00:16:3e prefix). Returns the note saying so."""
    config = client.instance(name, project).get("config") or {}
    changes = {k: str(uuid.uuid4()) for k in IDENTITY_KEYS if config.get(k)}
    nics = sorted(k for k in config if k.startswith("volatile.") and k.endswith(".hwaddr"))
    changes.update({k: "00:16:3e:" + ":".join(f"{b:02x}" for b in secrets.token_bytes(3)) for k in nics})
    if not changes:
        return ()
    client.patch_instance_config(name, changes, project)
    said = ["volatile.uuid"] + (["cloud-init instance id"] if "volatile.cloud-init.instance-id" in changes else [])
    said += [f"MAC address of {k.split('.')[1]}" for k in nics]
    return (f"a copy: new {', '.join(said)} (--keep-identity keeps the original's)",)


def start_instance(client: LXDClient, name: str, project: str, done: str) -> None:
    try:
        client.start(name, project)
    except LXDError as e:
        raise LXDOperationFailed(f"instance {name!r} in project {project} {done}, but did not start: {e}") from e


def swap_instance(client: LXDClient, name: str, temp: str, project: str, start: bool | None = None) -> Imported:
    """Replace instance ``name`` by its imported copy ``temp``: stop it if it runs (as
    late as possible: the copy is in and checked), delete it, rename the copy, and start
    it when the original was running (``start``: True always, False never)."""
    c = client
    status = str(c.instance(name, project).get("status") or "Stopped")
    running = status != "Stopped"
    where = f"in project {project} on {c.endpoint}"

    def delete_old() -> None:
        if running:
            c.stop(name, force=True, project=project)
        try:
            c.delete_instance(name, project)
        except BaseException:
            if running:  # as it was (best effort: the delete's error is the one to report)
                with contextlib.suppress(LXDError):
                    c.start(name, project)
            raise

    replace_by_copy(
        "instance", where, name, temp, delete_old,
        lambda: c.delete_instance(temp, project),
        lambda: c.rename_instance(temp, name, project),
    )
    stopped = (f"it was {status.lower()}: stopped for the replacement",) if running else ()
    if not (running if start is None else start):
        return Imported("replaced", tuple(f"{n}; left stopped (--no-start)" for n in stopped))
    try:
        c.start(name, project)
    except LXDError as e:
        raise LXDReplaceIncomplete(
            f"instance {name!r} {where} was replaced by the backup, but it did not start"
            f"{f' again (it was {status.lower()})' if running else ''}: {e}"
        ) from e
    return Imported("replaced", tuple(f"{n} and started again" for n in stopped) or ("started (--start)",))


def import_image(
    client: LXDClient,
    data: Callable[[], Any],
    fingerprint: str,
    project: str | None,
    record: Record,
    aliases: list[Record],
    force: bool,
) -> Imported:
    """An image, then its record's mutable fields and its aliases; ``data()`` gives
    its bytes (pieces, or a (metadata, rootfs) pair). An image with that fingerprint is
    kept (``force``: same content; only its record and aliases are brought back)."""
    c = client
    exists_ = exists(lambda: c.image(fingerprint, project)) is not None
    taken = {a["name"]: a.get("target") for a in c.image_aliases(project)}
    clashes = {a["name"] for a in aliases if a["name"] in taken and taken[a["name"]] != fingerprint}
    if (exists_ or clashes) and not force:
        what = f"image {fingerprint[:12]}" if exists_ else f"image alias(es) {', '.join(sorted(clashes))}"
        raise LXDObjectExists(f"{what} exist(s) in project {project} on {c.endpoint}; use --force to replace")
    if not exists_:
        c.import_image(
            data(),
            fingerprint=fingerprint,
            properties=record.get("properties") or None,
            public=bool(record.get("public")),
            filename=record.get("filename"),
            project=project,
        )
    if record:
        c.update_image(fingerprint, record, project)
    for alias in aliases:  # the image is in: only now do aliases of other images move to it
        description = alias.get("description", "")
        if alias["name"] in clashes:
            c.update_image_alias(alias["name"], fingerprint, description, project)
        elif alias["name"] not in taken:
            c.add_image_alias(alias["name"], fingerprint, description, project)
    return Imported("updated" if exists_ else "created")
