"""LXD's objects as the API gives them (plain JSON dicts), and which of their fields LXD
generates itself (docs/lxd.md section 5): dropped before a create (POST) or update (PUT)."""

from __future__ import annotations

from typing import Any, Final, Literal

Project = str | None
Record = dict[str, Any]


_READ_ONLY: Final[dict[str, frozenset[str]]] = {
    "project": frozenset({"used_by"}),
    "storage_pool": frozenset({"used_by", "status", "locations"}),
    "network": frozenset({"used_by", "managed", "status", "locations"}),
    "network_acl": frozenset({"used_by"}),
    "network_zone": frozenset({"used_by"}),
    "network_zone_record": frozenset(),
    "profile": frozenset({"used_by", "project"}),
    "certificate": frozenset({"fingerprint"}),
    "image_alias": frozenset({"type"}),
    # PUT /1.0/images/<fp> takes only these; everything else is server-generated
    "image": frozenset(
        {
            "aliases",
            "architecture",
            "cached",
            "created_at",
            "filename",
            "fingerprint",
            "last_used_at",
            "size",
            "type",
            "uploaded_at",
            "update_source",
            "project",
        }
    ),
}
# Fields a PUT (update of an existing object) does not take besides the read-only ones.
_NOT_IN_PUT: Final[dict[str, frozenset[str]]] = {
    "project": frozenset({"name"}),
    "profile": frozenset({"name"}),
    "network": frozenset({"name", "type"}),
    "network_acl": frozenset({"name"}),
    "network_zone": frozenset({"name", "records"}),
    "network_zone_record": frozenset({"name"}),
    # the certificate itself cannot change under its fingerprint
    "certificate": frozenset({"certificate"}),
    "storage_pool": frozenset({"name", "driver"}),
}
RecordKind = Literal[
    "project",
    "storage_pool",
    "network",
    "network_acl",
    "network_zone",
    "network_zone_record",
    "profile",
    "certificate",
    "image_alias",
    "image",
    "server_config",
]


def strip_read_only(kind: RecordKind, record: Record) -> Record:
    """A copy of ``record`` (as read with ``?recursion=1``) without the fields LXD
    generates itself, ready to POST. For ``server_config`` the record is the config
    map of ``GET /1.0``: write-only keys (``core.trust_password``) read back as boolean
    ``true`` and cannot be restored, so they are dropped."""
    if kind == "server_config":
        return {k: v for k, v in record.items() if not isinstance(v, bool)}
    try:
        drop = _READ_ONLY[kind]
    except KeyError:
        raise ValueError(f"unknown LXD record kind {kind!r}") from None
    return {k: v for k, v in record.items() if k not in drop}


def for_put(kind: RecordKind, record: Record) -> Record:
    """A copy of ``record`` with only the fields an update (PUT or PATCH) takes."""
    drop = _READ_ONLY[kind] | _NOT_IN_PUT.get(kind, frozenset())
    return {k: v for k, v in record.items() if k not in drop}


def attached_volumes(record: Record) -> list[tuple[str, str]]:
    """The custom volumes an instance record's disks attach, as (pool, volume): disk
    devices with a pool and a volume name as source (not the root disk, not a host path)."""
    return sorted(
        {
            (str(d["pool"]), str(d["source"]))
            for d in (record.get("expanded_devices") or record.get("devices") or {}).values()
            if d.get("type") == "disk" and d.get("pool") and d.get("source") and d.get("path") != "/"
            and not str(d["source"]).startswith("/")
        }
    )
