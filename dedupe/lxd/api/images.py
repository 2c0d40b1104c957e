"""Images: export (split or unified, fingerprint checked), upload (the same forms),
record updates, aliases, and publishing an instance as an image."""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Iterator
from urllib.parse import urlencode

from dedupe.lxd.errors import ImageFingerprintMismatch, LXDOperationFailed
from dedupe.lxd.api.multipart import multipart_body
from dedupe.lxd.api.records import Project, Record, strip_read_only
from dedupe.lxd.api.streams import ExportStream, ImageExport
from dedupe.lxd.api.transport import Transport
from dedupe.lxd.api.uploads import UploadSource, chunks


class Images(Transport):
    def export_image(self, fingerprint: str, project: Project = None) -> ImageExport:
        segs = ["1.0", "images", fingerprint, "export"]
        response = self.request("GET", segs, project=project, stream=True)
        return ImageExport(ExportStream(response, f"GET /{'/'.join(segs)}"), fingerprint)

    def import_image(
        self,
        data: UploadSource | tuple[UploadSource, UploadSource],
        fingerprint: str | None = None,
        properties: dict[str, str] | None = None,
        public: bool = False,
        filename: str | None = None,
        project: Project = None,
    ) -> str:
        """Upload an image: one unified tarball, or ``(metadata, rootfs)`` sent as
        multipart/form-data like ``lxc image import``. Returns the fingerprint LXD
        computed; raises ``ImageFingerprintMismatch`` when it is not ``fingerprint``.
        Aliases are not part of an upload: add them with ``add_image_alias``."""
        headers = {"X-LXD-public": "1" if public else "0"}
        if fingerprint:
            headers["X-LXD-fingerprint"] = fingerprint
        if filename:
            headers["X-LXD-filename"] = filename
        if properties:
            headers["X-LXD-properties"] = urlencode(properties)
        body: Iterator[bytes]
        if isinstance(data, tuple):
            boundary = secrets.token_hex(16)
            headers["Content-Type"] = f"multipart/form-data; boundary={boundary}"
            body = multipart_body(
                boundary,
                [("metadata", "metadata.tar.gz", data[0]), ("rootfs", "rootfs.tar.gz", data[1])],
            )
        else:
            headers["Content-Type"] = "application/octet-stream"
            body = chunks(data)
        try:
            op = self._upload(["1.0", "images"], body, headers, project)
        except LXDOperationFailed as e:
            if "fingerprints don't match" in str(e):  # LXD checked X-LXD-fingerprint
                raise ImageFingerprintMismatch(
                    f"image uploaded to LXD as {fingerprint}: {e}", status=e.status
                ) from e
            raise
        actual = str((op.get("metadata") or {}).get("fingerprint", ""))
        if fingerprint and actual != fingerprint:
            raise ImageFingerprintMismatch(
                f"image uploaded to LXD as {fingerprint} got fingerprint {actual or '?'}"
            )
        return actual

    def update_image(self, fingerprint: str, record: Record, project: Project = None) -> None:
        """PUT the mutable fields of an image record (auto_update, properties, public,
        expires_at, profiles)."""
        self._sync(
            "PUT",
            ["1.0", "images", fingerprint],
            project=project,
            json=strip_read_only("image", record),
        )

    def delete_image(self, fingerprint: str, project: Project = None) -> None:
        self._sync("DELETE", ["1.0", "images", fingerprint], project=project)

    def add_image_alias(
        self, name: str, target: str, description: str = "", project: Project = None
    ) -> None:
        body = {"name": name, "target": target, "description": description}
        self._sync("POST", ["1.0", "images", "aliases"], project=project, json=body)

    def update_image_alias(
        self, name: str, target: str, description: str = "", project: Project = None
    ) -> None:
        """Point an existing alias at another image (one PUT: the alias is never missing)."""
        body = {"target": target, "description": description}
        self._sync("PUT", ["1.0", "images", "aliases", name], project=project, json=body)

    def delete_image_alias(self, name: str, project: Project = None) -> None:
        self._sync("DELETE", ["1.0", "images", "aliases", name], project=project)

    def publish_instance(
        self,
        name: str,
        snapshot: str | None = None,
        aliases: Iterable[str] = (),
        properties: dict[str, str] | None = None,
        project: Project = None,
    ) -> str:
        """Make a (unified) image from an instance or one of its snapshots; returns the
        fingerprint."""
        source = {
            "type": "snapshot" if snapshot else "instance",
            "name": f"{name}/{snapshot}" if snapshot else name,
        }
        body = {
            "source": source,
            "properties": properties or {},
            "aliases": [{"name": a} for a in aliases],
        }
        op = self._sync("POST", ["1.0", "images"], project=project, json=body)
        return str((op.get("metadata") or {}).get("fingerprint", ""))
