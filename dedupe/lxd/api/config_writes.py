"""Creating, updating and deleting LXD's config records: profiles, networks, network
ACLs, network zones (with their DNS records), projects, storage pools, the server config
and trusted certificates."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterable
from typing import Any

from dedupe.lxd.api.records import Project, Record, RecordKind, for_put, strip_read_only
from dedupe.lxd.api.transport import Transport

# a collection below /1.0: one segment ("profiles") or several ("network-zones", z, "records")
Collection = str | tuple[str, ...]


def _segments(collection: Collection, *more: str) -> list[str]:
    return ["1.0", *((collection,) if isinstance(collection, str) else collection), *more]


class ConfigWrites(Transport):
    # -- one pattern for every record collection: POST to create, PUT the whole record
    # to update, DELETE by name (``project=False``: a server-wide collection)

    def _create(self, collection: Collection, kind: RecordKind, record: Record, project: Project | bool) -> None:
        self._sync("POST", _segments(collection), project=project, json=strip_read_only(kind, record))

    def _replace(self, collection: Collection, kind: RecordKind, record: Record, project: Project | bool) -> None:
        self._sync("PUT", _segments(collection, record["name"]), project=project, json=for_put(kind, record))

    def _delete(self, collection: Collection, name: str, project: Project | bool) -> None:
        self._sync("DELETE", _segments(collection, name), project=project)

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

    def create_network_zone(self, record: Record, project: Project = None) -> None:
        """Create a zone as ``network_zone`` reads it, then its DNS records (``records``)."""
        self._create("network-zones", "network_zone", {k: v for k, v in record.items() if k != "records"}, project)
        for entry in record.get("records") or ():
            self._create(_zone_records(record["name"]), "network_zone_record", entry, project)

    def update_network_zone(self, record: Record, project: Project = None) -> None:
        """PUT the zone's description and config, then make its DNS records those of
        ``record``: PUT over the ones it has, POST the missing ones, DELETE the others."""
        self._replace("network-zones", "network_zone", record, project)
        records = _zone_records(record["name"])
        have = {r["name"] for r in self.network_zone_records(record["name"], project)}
        wanted = record.get("records") or []
        for entry in wanted:
            write = self._replace if entry["name"] in have else self._create
            write(records, "network_zone_record", entry, project)
        for name in sorted(have - {r["name"] for r in wanted}):
            self._delete(records, name, project)

    def delete_network_zone(self, name: str, project: Project = None) -> None:
        """Delete a zone (LXD deletes its DNS records with it)."""
        self._delete("network-zones", name, project)

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
        cert_type: str = "client",
    ) -> str:
        """Trust a certificate (PEM or base64 DER); returns its fingerprint."""
        body = {
            "type": cert_type,
            "name": name,
            "restricted": restricted,
            "projects": list(projects),
            "certificate": certificate_post_form(certificate),
        }
        self._sync("POST", ["1.0", "certificates"], project=False, json=body)
        return certificate_fingerprint(certificate)

    def create_certificate(self, record: Record) -> str:
        """Re-create a certificate record as read (its PEM is converted to base64 DER,
        the only form POST accepts), keeping name, type, restricted and projects."""
        return self.add_certificate(
            record["certificate"],
            record.get("name", ""),
            bool(record.get("restricted")),
            record.get("projects") or (),
            record.get("type") or "client",
        )

    def update_certificate(self, record: Record) -> None:
        """PATCH name, type, restricted and projects of the certificate with the
        record's fingerprint (the certificate itself is what the fingerprint names)."""
        self._sync(
            "PATCH",
            ["1.0", "certificates", record["fingerprint"]],
            project=False,
            json=for_put("certificate", record),
        )

    def delete_certificate(self, fingerprint: str) -> None:
        self._sync("DELETE", ["1.0", "certificates", fingerprint], project=False)


def _zone_records(zone: str) -> tuple[str, ...]:
    return ("network-zones", zone, "records")


def _certificate_der(certificate: str | bytes) -> bytes:
    data = certificate.encode() if isinstance(certificate, str) else certificate
    if b"-----BEGIN" in data:
        from cryptography import x509  # here: ~20-30 ms of every LXD run's start otherwise
        from cryptography.hazmat.primitives.serialization import Encoding
        return x509.load_pem_x509_certificate(data).public_bytes(Encoding.DER)
    return base64.b64decode(data, validate=True)


def certificate_post_form(certificate: str | bytes) -> str:
    """What ``POST /1.0/certificates`` takes as ``certificate``: base64 of the DER, with
    no PEM header, footer or line breaks (LXD 5.0.2 answers a PEM with 400 "illegal
    base64 data at input byte 0", docs/lxd.md section 5), from a PEM (as GET gives it)
    or from that form already."""
    return base64.b64encode(_certificate_der(certificate)).decode()


def certificate_fingerprint(certificate: str | bytes) -> str:
    """LXD's fingerprint of a certificate: the SHA-256 of its DER, in hex."""
    return hashlib.sha256(_certificate_der(certificate)).hexdigest()
