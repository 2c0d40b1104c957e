"""Instances and custom volumes themselves: start, stop, freeze, snapshots, create and
delete (what tests and restores need besides backups)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from dedupe.lxd.api.records import Project, Record
from dedupe.lxd.api.transport import Transport


class Lifecycle(Transport):
    def _state(self, name: str, action: str, project: Project, force: bool = False) -> None:
        body = {"action": action, "timeout": 30, "force": force}
        self._sync("PUT", ["1.0", "instances", name, "state"], project=project, json=body)

    def freeze(self, name: str, project: Project = None) -> None:
        self._state(name, "freeze", project)

    def unfreeze(self, name: str, project: Project = None) -> None:
        self._state(name, "unfreeze", project)

    @contextmanager
    def frozen(self, name: str, project: Project = None) -> Iterator[None]:
        """The instance frozen for the block, thawed after it whatever happens."""
        self.freeze(name, project)
        try:
            yield
        finally:
            self.unfreeze(name, project)

    def start(self, name: str, project: Project = None) -> None:
        self._state(name, "start", project)

    def stop(self, name: str, force: bool = True, project: Project = None) -> None:
        self._state(name, "stop", project, force=force)

    def create_snapshot(self, name: str, snap: str, project: Project = None) -> None:
        self._sync(
            "POST", ["1.0", "instances", name, "snapshots"], project=project, json={"name": snap}
        )

    def delete_snapshot(self, name: str, snap: str, project: Project = None) -> None:
        self._sync("DELETE", ["1.0", "instances", name, "snapshots", snap], project=project)

    def create_instance(
        self,
        name: str,
        image_alias: str,
        project: Project = None,
        config: dict[str, str] | None = None,
        devices: dict[str, dict[str, str]] | None = None,
        profiles: list[str] | None = None,
    ) -> None:
        """A container from a local image alias (not started)."""
        body: Record = {
            "name": name,
            "type": "container",
            "source": {"type": "image", "alias": image_alias},
            "config": config or {},
            "devices": devices or {},
        }
        if profiles is not None:
            body["profiles"] = profiles
        self._sync("POST", ["1.0", "instances"], project=project, json=body)

    def delete_instance(self, name: str, project: Project = None) -> None:
        """Delete an instance with its snapshots and backups (it must be stopped)."""
        self._sync("DELETE", ["1.0", "instances", name], project=project)

    def patch_instance_config(self, name: str, config: dict[str, str], project: Project = None) -> None:
        """PATCH the instance: set the given config keys (volatile ones too), leave the others."""
        self._sync("PATCH", ["1.0", "instances", name], project=project, json={"config": config})

    def rename_instance(self, name: str, new_name: str, project: Project = None) -> None:
        """Rename a stopped instance (its snapshots move with it). LXD 5.0.2 rewrites the
        instance's ``backup.yaml`` for the new name, not its snapshots' ones, and sets
        ``volatile.apply_template: rename`` for the next start."""
        self._sync("POST", ["1.0", "instances", name], project=project, json={"name": new_name})

    def create_custom_volume(
        self, pool: str, name: str, config: dict[str, str] | None = None, project: Project = None
    ) -> None:
        body = {"name": name, "type": "custom", "config": config or {}}
        self._sync(
            "POST", ["1.0", "storage-pools", pool, "volumes", "custom"], project=project, json=body
        )

    def delete_custom_volume(self, pool: str, name: str, project: Project = None) -> None:
        self._sync(
            "DELETE", ["1.0", "storage-pools", pool, "volumes", "custom", name], project=project
        )

    def rename_custom_volume(self, pool: str, name: str, new_name: str, project: Project = None) -> None:
        """Rename a custom volume (with its snapshots); LXD refuses one in use."""
        self._sync(
            "POST",
            ["1.0", "storage-pools", pool, "volumes", "custom", name],
            project=project,
            json={"name": new_name},
        )

    def create_volume_snapshot(
        self, pool: str, name: str, snap: str, project: Project = None
    ) -> None:
        self._sync(
            "POST",
            ["1.0", "storage-pools", pool, "volumes", "custom", name, "snapshots"],
            project=project,
            json={"name": snap},
        )
