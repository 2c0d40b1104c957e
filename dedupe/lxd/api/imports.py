"""Backup tarballs into LXD: new instances and custom volumes from a streamed upload
(chunked transfer encoding, nothing held whole)."""

from __future__ import annotations

from dedupe.lxd.api.records import Project, Record
from dedupe.lxd.api.transport import Transport
from dedupe.lxd.api.uploads import UploadSource


class Imports(Transport):
    def import_instance(
        self,
        stream: UploadSource,
        name: str | None = None,
        pool: str | None = None,
        project: Project = None,
    ) -> str:
        """Create an instance from a backup tarball (any compression LXD sniffs), streamed
        from ``stream``; returns the new instance's name."""
        headers = {"Content-Type": "application/octet-stream"}
        if name:
            headers["X-LXD-name"] = name
        if pool:
            headers["X-LXD-pool"] = pool
        op = self._upload(["1.0", "instances"], stream, headers, project)
        return name or _resource_name(op, "instances")

    def import_custom_volume(
        self, pool: str, stream: UploadSource, name: str | None = None, project: Project = None
    ) -> str:
        """Create a custom volume (with its snapshots) from a volume backup tarball. Only
        ``.../volumes/custom`` accepts it (``.../volumes`` resets the connection)."""
        headers = {"Content-Type": "application/octet-stream"}
        if name:
            headers["X-LXD-name"] = name
        segs = ["1.0", "storage-pools", pool, "volumes", "custom"]
        op = self._upload(segs, stream, headers, project)
        return name or _resource_name(op, "storage_volumes")


def _resource_name(op: Record, kind: str) -> str:
    for url in (op.get("resources") or {}).get(kind) or []:
        return str(url).split("?")[0].rstrip("/").rsplit("/", 1)[-1]
    return ""
