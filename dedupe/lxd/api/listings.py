"""Reading LXD's objects: the server, instances and snapshots, volumes, pools, images,
profiles, networks, network ACLs and zones, projects, certificates (``?recursion=1``
listings)."""

from __future__ import annotations

from dedupe.lxd.api.records import Project, Record
from dedupe.lxd.api.transport import Transport


class Listings(Transport):
    def server_info(self) -> Record:
        """``GET /1.0``: api_extensions, auth, environment (server_version, server_name,
        storage drivers, ...), config."""
        return dict(self._get(project=False))

    def server_config(self) -> Record:
        return dict(self.server_info().get("config") or {})

    def instances(self, project: Project = None) -> list[Record]:
        return self._list("instances", project=project)

    def instance(self, name: str, project: Project = None) -> Record:
        return dict(self._get("instances", name, project=project))

    def instance_state(self, name: str, project: Project = None) -> Record:
        return dict(self._get("instances", name, "state", project=project))

    def snapshots(self, name: str, project: Project = None) -> list[Record]:
        return self._list("instances", name, "snapshots", project=project)

    def custom_volumes(self, pool: str, project: Project = None) -> list[Record]:
        """Custom volumes of ``pool`` in the project, without their snapshots (which this
        listing returns as ``vol/snap``, and pylxd misparses)."""
        volumes = self._list("storage-pools", pool, "volumes", project=project)
        return [v for v in volumes if v.get("type") == "custom" and "/" not in v.get("name", "")]

    def custom_volume(self, pool: str, name: str, project: Project = None) -> Record:
        return dict(self._get("storage-pools", pool, "volumes", "custom", name, project=project))

    def volume_snapshots(self, pool: str, name: str, project: Project = None) -> list[Record]:
        return self._list(
            "storage-pools", pool, "volumes", "custom", name, "snapshots", project=project
        )

    def storage_pools(self) -> list[Record]:
        return self._list("storage-pools", project=False)

    def storage_pool(self, name: str) -> Record:
        return dict(self._get("storage-pools", name, project=False))

    def images(self, project: Project = None) -> list[Record]:
        return self._list("images", project=project)

    def image(self, fingerprint: str, project: Project = None) -> Record:
        return dict(self._get("images", fingerprint, project=project))

    def image_aliases(self, project: Project = None) -> list[Record]:
        return self._list("images", "aliases", project=project)

    def profiles(self, project: Project = None) -> list[Record]:
        return self._list("profiles", project=project)

    def profile(self, name: str, project: Project = None) -> Record:
        return dict(self._get("profiles", name, project=project))

    def networks(self, project: Project = None) -> list[Record]:
        """Managed networks only (the listing also has the host's interfaces)."""
        return [n for n in self._list("networks", project=project) if n.get("managed")]

    def network(self, name: str, project: Project = None) -> Record:
        return dict(self._get("networks", name, project=project))

    def network_leases(self, name: str, project: Project = None) -> list[Record]:
        """The DHCP leases (and static assignments) LXD's dnsmasq holds on a managed bridge."""
        return list(self._get("networks", name, "leases", project=project) or [])

    def network_acls(self, project: Project = None) -> list[Record]:
        return self._list("network-acls", project=project)

    def network_acl(self, name: str, project: Project = None) -> Record:
        return dict(self._get("network-acls", name, project=project))

    def network_zones(self, project: Project = None) -> list[Record]:
        """Network zones, each with its DNS records as ``records`` (see ``network_zone``)."""
        return [self._with_records(z, project) for z in self._list("network-zones", project=project)]

    def network_zone(self, name: str, project: Project = None) -> Record:
        """A network zone as dedupe keeps it: the zone's record plus ``records``, its DNS
        records (``/1.0/network-zones/<name>/records``) sorted by name."""
        return self._with_records(dict(self._get("network-zones", name, project=project)), project)

    def network_zone_records(self, zone: str, project: Project = None) -> list[Record]:
        return self._list("network-zones", zone, "records", project=project)

    def _with_records(self, zone: Record, project: Project) -> Record:
        records = self.network_zone_records(zone["name"], project)
        return {**zone, "records": sorted(records, key=lambda r: str(r.get("name", "")))}

    def projects(self) -> list[Record]:
        return self._list("projects", project=False)

    def project_record(self, name: str) -> Record:
        return dict(self._get("projects", name, project=False))

    def certificates(self) -> list[Record]:
        return self._list("certificates", project=False)

    def certificate(self, fingerprint: str) -> Record:
        return dict(self._get("certificates", fingerprint, project=False))
