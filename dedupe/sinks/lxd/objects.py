"""Instances, custom volumes and images back into LXD, from streams of byte pieces.

Instances and volumes: the backup tarball is streamed straight into LXD's import API
(no temporary copy); when the pieces stop with an error, the upload is cut and LXD's
import fails, leaving nothing. ``pool`` only sets where LXD puts them; the pool record
inside ``backup.yaml`` is refreshed by LXD at the next change. Images: re-imported with
the same fingerprint, which LXD checks. Something of that name that exists is deleted
and imported again with ``force``, else refused.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from dedupe.sinks.lxd.errors import LXDObjectExists
from dedupe.sinks.lxd.records import exists
from dedupe.sinks.lxd.rename import rewrite_tar_members, yaml_changes
from dedupe.sources.lxd.client import LXDClient
from dedupe.sources.lxd.records import Record

Pieces = Iterable[bytes | memoryview]


def make_room(
    client: LXDClient,
    kind: str,
    name: str,
    project: str | None,
    get: Callable[[], Any],
    delete: Callable[[], None],
    force: bool,
) -> bool:
    """True when an object of that name was there (and is now deleted: ``force``)."""
    if exists(get) is None:
        return False
    if not force:
        raise LXDObjectExists(
            f"{kind} {name!r} exists in project {project} on {client.endpoint}; use --force to replace it"
        )
    delete()
    return True


def import_volume(client: LXDClient, pieces: Pieces, pool: str, name: str, project: str | None, force: bool) -> str:
    """A custom volume from its backup tarball; returns the action (created, replaced)."""
    replaced = make_room(
        client,
        "volume",
        name,
        project,
        lambda: client.custom_volume(pool, name, project),
        lambda: client.delete_custom_volume(pool, name, project),
        force,
    )
    client.import_custom_volume(pool, pieces, name=name, project=project)
    return "replaced" if replaced else "created"


def import_instance(
    client: LXDClient,
    pieces: Pieces,
    name: str,
    project: str,
    pool: str | None,
    source: tuple[str, str | None],
    force: bool,
) -> str:
    """An instance from its backup tarball, renamed inside when ``name`` or ``project``
    differ from ``source`` (the backed-up name and project); returns the action."""

    def delete() -> None:
        if client.instance(name, project).get("status") != "Stopped":
            client.stop(name, force=True, project=project)
        client.delete_instance(name, project)

    replaced = make_room(client, "instance", name, project, lambda: client.instance(name, project), delete, force)
    new_name = name if name != source[0] else None
    new_project = project if project != source[1] else None
    if new_name or new_project:
        pieces = rewrite_tar_members(pieces, lambda path: yaml_changes(path, new_name, new_project))
    client.import_instance(pieces, name=name, pool=pool, project=project)
    return "replaced" if replaced else "created"


def import_image(
    client: LXDClient,
    data: Callable[[], Any],
    fingerprint: str,
    project: str | None,
    record: Record,
    aliases: list[Record],
    force: bool,
) -> str:
    """An image, then its record's mutable fields and its aliases; ``data()`` gives
    its bytes (pieces, or a (metadata, rootfs) pair). Returns the action."""
    c = client
    exists_ = exists(lambda: c.image(fingerprint, project)) is not None
    taken = {a["name"]: a.get("target") for a in c.image_aliases(project)}
    clashes = [a["name"] for a in aliases if a["name"] in taken and taken[a["name"]] != fingerprint]
    if (exists_ or clashes) and not force:
        what = f"image {fingerprint[:12]}" if exists_ else f"image alias(es) {', '.join(clashes)}"
        raise LXDObjectExists(f"{what} exist(s) in project {project} on {c.endpoint}; use --force to replace")
    if exists_:
        c.delete_image(fingerprint, project)
    for alias in clashes:
        c.delete_image_alias(alias, project)
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
    have = {a["name"] for a in c.image_aliases(project)}
    for alias in aliases:
        if alias["name"] not in have:
            c.add_image_alias(alias["name"], fingerprint, alias.get("description", ""), project)
    return "replaced" if exists_ else "created"
