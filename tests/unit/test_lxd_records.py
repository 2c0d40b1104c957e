"""LXD config records without a daemon: the form POST /1.0/certificates takes, the
fields an update sends, how a network zone's DNS records are brought in line, which
records a run backs up, and how a record restore decides (a fake client records the
requests)."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from dedupe.lxd.restore_run import RUN_ORDER
from dedupe.lxd.errors import LXDNotFound, LXDObjectExists
from dedupe.lxd.sink.records import GLOBAL_KINDS, restore_record
from dedupe.lxd.api.client import LXDClient
from dedupe.lxd.api.config_writes import certificate_fingerprint, certificate_post_form
from dedupe.lxd.source.plan import LXDSelection, plan
from dedupe.lxd.api.records import for_put, strip_read_only


def _pem() -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "unit")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(1).not_valid_before(now).not_valid_after(now + dt.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM).decode()


# --------------------------------------------------------------------------------------
# certificates: PEM (as GET gives it) to the POST form


def test_post_form_of_a_pem_is_its_body_without_header_footer_or_newlines() -> None:
    pem = _pem()
    body = "".join(line for line in pem.splitlines() if not line.startswith("-----"))
    der = x509.load_pem_x509_certificate(pem.encode()).public_bytes(serialization.Encoding.DER)
    assert certificate_post_form(pem) == body == base64.b64encode(der).decode()
    assert certificate_post_form(pem.encode()) == body
    assert "\n" not in body and "-----" not in body


def test_post_form_is_kept_and_the_fingerprint_is_the_sha256_of_the_der() -> None:
    pem = _pem()
    form = certificate_post_form(pem)
    assert certificate_post_form(form) == form
    cert = x509.load_pem_x509_certificate(pem.encode())
    expected = cert.fingerprint(hashes.SHA256()).hex()
    assert certificate_fingerprint(pem) == certificate_fingerprint(form) == expected
    assert expected == hashlib.sha256(base64.b64decode(form)).hexdigest()


def test_post_form_refuses_what_is_neither_pem_nor_base64() -> None:
    with pytest.raises(ValueError):
        certificate_post_form("not a certificate!")


# --------------------------------------------------------------------------------------
# fields: what a create and an update send


def test_read_only_and_update_fields_of_zones_and_certificates() -> None:
    zone = {"name": "z.example", "description": "d", "config": {"k": "v"}, "used_by": ["/1.0/networks/n"],
            "records": [{"name": "www", "description": "", "entries": [], "config": {}}]}
    assert strip_read_only("network_zone", zone) == {k: v for k, v in zone.items() if k != "used_by"}
    assert for_put("network_zone", zone) == {"description": "d", "config": {"k": "v"}}
    rec = zone["records"][0]
    assert strip_read_only("network_zone_record", rec) == rec
    assert for_put("network_zone_record", rec) == {"description": "", "entries": [], "config": {}}
    cert = {"name": "c", "type": "client", "restricted": True, "projects": ["p"], "certificate": "PEM",
            "fingerprint": "ab"}
    assert strip_read_only("certificate", cert) == {k: v for k, v in cert.items() if k != "fingerprint"}
    assert for_put("certificate", cert) == {"name": "c", "type": "client", "restricted": True, "projects": ["p"]}


# --------------------------------------------------------------------------------------
# a client whose requests are recorded, over an in-memory server


class FakeLXD(LXDClient):
    """``_sync`` answers from ``objects`` ({path: record}) and records every request."""

    def __init__(self, objects: dict[str, Any] | None = None) -> None:  # no connection
        self.endpoint = "unix:/fake"
        self.project = "default"
        self.socket_path = None
        self.objects: dict[str, Any] = objects or {}
        self.calls: list[tuple[str, str, Any]] = []

    def _sync(self, method: str, segments: Any, **kwargs: Any) -> Any:
        path = "/".join(segments)
        project = kwargs.get("project")
        self.calls.append((method, path, kwargs.get("json")))
        if method != "GET":
            return None
        params = kwargs.get("params") or {}
        if params.get("recursion"):
            prefix = path + "/"
            return [v for k, v in sorted(self.objects.items())
                    if k.startswith(prefix) and "/" not in k[len(prefix):]]
        if path not in self.objects:
            raise LXDNotFound(f"{path} not found (project {project})")
        return self.objects[path]

    def writes(self) -> list[tuple[str, str, Any]]:
        return [c for c in self.calls if c[0] != "GET"]


def _zone(records: list[dict[str, Any]], description: str = "zone") -> dict[str, Any]:
    return {"name": "z.example", "description": description, "config": {}, "records": records}


def _rec(name: str, value: str) -> dict[str, Any]:
    return {"name": name, "description": "", "config": {}, "entries": [{"type": "A", "value": value, "ttl": 300}]}


def _server(zone: dict[str, Any]) -> dict[str, Any]:
    objs = {"1.0/network-zones/z.example": {**{k: v for k, v in zone.items() if k != "records"}, "used_by": []}}
    for r in zone["records"]:
        objs[f"1.0/network-zones/z.example/records/{r['name']}"] = r
    return objs


def test_zone_reads_with_its_records_sorted_by_name() -> None:
    c = FakeLXD(_server(_zone([_rec("www", "10.0.0.2"), _rec("mail", "10.0.0.3")])))
    zone = c.network_zone("z.example")
    assert [r["name"] for r in zone["records"]] == ["mail", "www"]
    assert zone["used_by"] == [] and zone["description"] == "zone"
    assert c.network_zones() == [zone]


def test_zone_create_posts_the_zone_then_each_record() -> None:
    c = FakeLXD()
    c.create_network_zone({**_zone([_rec("a", "10.0.0.1"), _rec("b", "10.0.0.2")]), "used_by": []})
    assert c.writes() == [
        ("POST", "1.0/network-zones", {"name": "z.example", "description": "zone", "config": {}}),
        ("POST", "1.0/network-zones/z.example/records", _rec("a", "10.0.0.1")),
        ("POST", "1.0/network-zones/z.example/records", _rec("b", "10.0.0.2")),
    ]


def test_zone_update_puts_posts_and_deletes_records_to_match() -> None:
    c = FakeLXD(_server(_zone([_rec("keep", "10.0.0.1"), _rec("gone", "10.0.0.9")], "old")))
    c.update_network_zone(_zone([_rec("keep", "10.0.0.5"), _rec("new", "10.0.0.6")], "new"))
    put = {"description": "", "config": {}, "entries": [{"type": "A", "value": "10.0.0.5", "ttl": 300}]}
    assert c.writes() == [
        ("PUT", "1.0/network-zones/z.example", {"description": "new", "config": {}}),
        ("PUT", "1.0/network-zones/z.example/records/keep", put),
        ("POST", "1.0/network-zones/z.example/records", _rec("new", "10.0.0.6")),
        ("DELETE", "1.0/network-zones/z.example/records/gone", None),
    ]


# --------------------------------------------------------------------------------------
# restore_record: created, unchanged, exists, updated


def _cert_record(pem: str, **changes: Any) -> dict[str, Any]:
    return {"name": "backup-client", "type": "client", "restricted": True, "projects": ["web"],
            "certificate": pem, "fingerprint": certificate_fingerprint(pem), **changes}


def test_certificate_restore_created_unchanged_exists_updated() -> None:
    pem = _pem()
    record = _cert_record(pem)
    fp = record["fingerprint"]
    c = FakeLXD()
    assert restore_record(c, "certificate", record, None, force=False) == "created"
    assert c.writes() == [("POST", "1.0/certificates", {"type": "client", "name": "backup-client",
                                                        "restricted": True, "projects": ["web"],
                                                        "certificate": certificate_post_form(pem)})]
    c = FakeLXD({f"1.0/certificates/{fp}": record})
    assert restore_record(c, "certificate", record, None, force=False) == "unchanged"
    assert c.writes() == []
    c = FakeLXD({f"1.0/certificates/{fp}": _cert_record(pem, name="renamed", projects=[])})
    with pytest.raises(LXDObjectExists, match=f"certificate '{fp}' exists.*--force"):
        restore_record(c, "certificate", record, None, force=False)
    assert restore_record(c, "certificate", record, None, force=True) == "updated"
    assert c.writes() == [("PATCH", f"1.0/certificates/{fp}", {"name": "backup-client", "type": "client",
                                                                "restricted": True, "projects": ["web"]})]


def test_zone_restore_unchanged_when_equal_and_updated_with_force() -> None:
    zone = _zone([_rec("www", "10.0.0.2")])
    c = FakeLXD(_server(zone))
    assert restore_record(c, "network-zone", {**zone, "used_by": ["x"]}, "p", force=False) == "unchanged"
    changed = _zone([_rec("www", "10.0.0.3")])
    with pytest.raises(LXDObjectExists, match="network-zone 'z.example' exists in project p"):
        restore_record(c, "network-zone", changed, "p", force=False)
    assert c.writes() == []
    assert restore_record(c, "network-zone", changed, "p", force=True) == "updated"
    assert ("PUT", "1.0/network-zones/z.example/records/www", for_put("network_zone_record", changed["records"][0])) \
        in c.writes()


# --------------------------------------------------------------------------------------
# what a run backs up, and in which order a run restores


class PlanLXD(FakeLXD):
    def __init__(self, pem: str) -> None:
        super().__init__({
            "1.0": {"config": {"user.k": "v"}},
            "1.0/projects/default": {"name": "default", "config": {}},
            "1.0/projects/web": {"name": "web", "config": {"features.networks": "true"}},
            "1.0/certificates/x": _cert_record(pem),
            "1.0/network-zones/z.example": {"name": "z.example", "description": "", "config": {}},
            "1.0/network-zones/z.example/records/www": _rec("www", "10.0.0.2"),
        })

    def storage_pools(self) -> list[dict[str, Any]]:
        return []

    def profiles(self, project: str | None = None) -> list[dict[str, Any]]:
        return []

    def networks(self, project: str | None = None) -> list[dict[str, Any]]:
        return []

    def network_acls(self, project: str | None = None) -> list[dict[str, Any]]:
        return []


def test_a_run_backs_up_zones_per_project_and_certificates_only_over_all_projects() -> None:
    pem = _pem()
    fp = certificate_fingerprint(pem)
    everything = plan(PlanLXD(pem), LXDSelection(only=frozenset({"config"})), frozenset({"config"}))
    groups = {o.group: o for o in everything}
    assert f"lxd/global/certificate/{fp}" in groups
    assert groups[f"lxd/global/certificate/{fp}"].meta["record"]["certificate"] == pem
    zone = groups["lxd/web/network-zone/z.example"].meta["record"]
    assert [r["name"] for r in zone["records"]] == ["www"]
    assert "lxd/default/network-zone/z.example" in groups  # the fake serves one zone to both projects
    one = plan(PlanLXD(pem), LXDSelection(project="web", only=frozenset({"config"})), frozenset({"config"}))
    kinds = {o.kind for o in one}
    assert "certificate" not in kinds and "server-config" not in kinds
    assert "lxd/web/network-zone/z.example" in {o.group for o in one}


def test_run_order_puts_certificates_after_projects_and_zones_before_networks() -> None:
    assert RUN_ORDER.index("project") < RUN_ORDER.index("certificate")
    assert RUN_ORDER.index("network-zone") < RUN_ORDER.index("network")
    assert "certificate" in GLOBAL_KINDS and "network-zone" not in GLOBAL_KINDS


def test_the_zones_a_network_names_forward_and_reverse() -> None:
    from dedupe.lxd.restore import network_zones

    assert network_zones({"config": {"dns.zone.forward": "a.example, b.example",
                                     "dns.zone.reverse.ipv4": "2.0.192.in-addr.arpa",
                                     "dns.zone.reverse.ipv6": "", "ipv4.address": "none"}}) == [
        "a.example", "b.example", "2.0.192.in-addr.arpa"]
    assert network_zones({"config": {"ipv4.address": "10.0.0.1/24"}}) == network_zones({}) == []
