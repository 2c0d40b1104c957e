"""Files inside an instance through LXD's file API (docs/lxd.md section 12): what is
at a path, and creating directories, files (streamed) and symlinks with owner and mode.

Measured on LXD 5.0.2: ids are the instance's own (the daemon works inside the
instance's user namespace); a POST to an existing file replaces its content but keeps
its owner and mode, so a replacement deletes first; a body without
``Content-Type: application/octet-stream`` is not written; a POST of an existing
directory succeeds and changes nothing; a missing parent directory is a 404. Times and
xattrs cannot be set.
"""

from __future__ import annotations

from dedupe.lxd.api.records import Project
from dedupe.lxd.api.transport import Transport
from dedupe.lxd.api.uploads import UploadSource, chunks
from dedupe.lxd.errors import LXDNotFound


class Files(Transport):
    def file_type(self, instance: str, path: str, project: Project = None) -> str | None:
        """``file``, ``directory`` or ``symlink`` at ``path`` inside the instance, or None."""
        try:
            response = self.request("GET", ["1.0", "instances", instance, "files"], project=project,
                                    params=_path(path), stream=True)
        except LXDNotFound:
            return None
        try:
            return response.headers.get("X-LXD-type") or "file"
        finally:
            response.close()

    def delete_file(self, instance: str, path: str, project: Project = None) -> None:
        self._sync("DELETE", ["1.0", "instances", instance, "files"], project=project, params=_path(path))

    def put_file(self, instance: str, path: str, kind: str, body: UploadSource, uid: int, gid: int, mode: int,
                 project: Project = None) -> None:
        """Create ``path`` as ``kind`` (``file``: ``body`` streamed; ``symlink``: ``body``
        is the target; ``directory``: no body) with the instance's ``uid``/``gid``."""
        headers = {"Content-Type": "application/octet-stream", "X-LXD-type": kind, "X-LXD-uid": str(uid),
                   "X-LXD-gid": str(gid), "X-LXD-mode": f"0{mode & 0o7777:o}", "X-LXD-write": "overwrite"}
        data = chunks(body) if kind == "file" else bytes(body) if kind == "symlink" else b""  # type: ignore[arg-type]
        self._sync("POST", ["1.0", "instances", instance, "files"], project=project, params=_path(path),
                   data=data, headers=headers)

    def read_file(self, instance: str, path: str, project: Project = None) -> bytes:
        """The content of a (small) file inside the instance."""
        response = self.request("GET", ["1.0", "instances", instance, "files"], project=project,
                                params=_path(path), stream=True)
        try:
            return bytes(response.content)
        finally:
            response.close()


def _path(path: str) -> dict[str, bytes]:
    """The ``path`` query parameter; a name that is not UTF-8 goes as its raw bytes."""
    return {"path": path.encode("utf-8", "surrogateescape")}
