"""Creating, updating and deleting LXD's config records: profiles, networks, network
ACLs, projects, storage pools, the server config and trusted certificates."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterable
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from dedupe.sources.lxd.records import Project, Record, RecordKind, for_put, strip_read_only
from dedupe.sources.lxd.transport import Transport


class ConfigWrites(Transport):
    # -- one pattern for every record collection: POST to create, PUT the whole record
    # to update, DELETE by name (``project=False``: a server-wide collection)

    def _create(self, collection: str, kind: RecordKind, record: Record, project: Project | bool) -> None:
        self._sync("POST", ["1.0", collection], project=project, json=strip_read_only(kind, record))

    def _replace(self, collection: str, kind: str, record: Record, project: Project | bool) -> None:
        self._sync("PUT", ["1.0", collection, record["name"]], project=project, json=for_put(kind, record))

    def _delete(self, collection: str, name: str, project: Project | bool) -> None:
        self._sync("DELETE", ["1.0", collection, name], project=project)

    def create_profile(self, record: Record, project: Project = None) -> None:
        self._create("profiles", "profile", record, project)

    def update_profile(self, record: Record, project: Project = None) -> None:
        """PUT a full profile record over the existing one (the only way for ``default``)."""
        self._replace("profiles", "profile", record, project)

    def delete_profile(self, name: str, project: Project = None) -> None:
        self._delete("profiles", name, project)

    def create_network(self, record: Record, project: Project = None) -> None:
        self._create("networks", "network", record, project)

    def update_network(self, record: Record, project: Project = None) -> None:
        self._replace("networks", "network", record, project)

    def delete_network(self, name: str, project: Project = None) -> None:
        self._delete("networks", name, project)

    def create_network_acl(self, record: Record, project: Project = None) -> None:
        self._create("network-acls", "network_acl", record, project)

    def update_network_acl(self, record: Record, project: Project = None) -> None:
        self._replace("network-acls", "network_acl", record, project)

    def delete_network_acl(self, name: str, project: Project = None) -> None:
        self._delete("network-acls", name, project)

    def create_project(self, record: Record) -> None:
        self._create("projects", "project", record, False)

    def update_project(self, record: Record) -> None:
        """PUT description and config (the only way for ``default``, which cannot be
        deleted)."""
        self._replace("projects", "project", record, False)

    def delete_project(self, name: str) -> None:
        self._delete("projects", name, False)

    def create_storage_pool(self, record: Record) -> None:
        """Create an empty pool. A pool whose data survived a database loss comes back
        with ``recover_import`` instead (section 7)."""
        self._create("storage-pools", "storage_pool", record, False)

    def delete_storage_pool(self, name: str) -> None:
        self._delete("storage-pools", name, False)

    def patch_server_config(self, config: dict[str, Any]) -> None:
        """PATCH /1.0: set the given keys (``""`` unsets one), leave the others."""
        self._sync(
            "PATCH",
            ["1.0"],
            project=False,
            json={"config": strip_read_only("server_config", config)},
        )

    def add_certificate(
        self,
        certificate: str | bytes,
        name: str,
        restricted: bool = False,
        projects: Iterable[str] = (),
    ) -> str:
        """Trust a client certificate (PEM or base64 DER); returns its fingerprint."""
        der = _certificate_der(certificate)
        body = {
            "type": "client",
            "name": name,
            "restricted": restricted,
            "projects": list(projects),
            "certificate": base64.b64encode(der).decode(),
        }
        self._sync("POST", ["1.0", "certificates"], project=False, json=body)
        return hashlib.sha256(der).hexdigest()

    def create_certificate(self, record: Record) -> str:
        """Re-create a certificate record as read (its PEM is converted to base64 DER,
        the only form POST accepts)."""
        return self.add_certificate(
            record["certificate"],
            record.get("name", ""),
            bool(record.get("restricted")),
            record.get("projects") or (),
        )

    def delete_certificate(self, fingerprint: str) -> None:
        self._sync("DELETE", ["1.0", "certificates", fingerprint], project=False)


def _certificate_der(certificate: str | bytes) -> bytes:
    data = certificate.encode() if isinstance(certificate, str) else certificate
    if b"-----BEGIN" in data:
        return x509.load_pem_x509_certificate(data).public_bytes(Encoding.DER)
    return base64.b64decode(data)
