"""``stats --format prometheus`` and ``--metrics-file`` (issue #19.2): the output parses
with prometheus_client's own parser, follows its naming conventions, and every value
is the one ``stats --json``/``list --json`` give."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from dedupe_testing import RunCli
from prometheus_client.parser import text_string_to_metric_families


@pytest.fixture(autouse=True)
def own_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Check records live in the cache directory: one per test."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


def parse(text: str) -> dict[str, Any]:
    """name -> {frozenset(labels) -> value}, plus ``_types``/``_help``."""
    out: dict[str, Any] = {"_types": {}, "_help": {}}
    for fam in text_string_to_metric_families(text):
        out["_types"][fam.name] = fam.type
        out["_help"][fam.name] = fam.documentation
        for s in fam.samples:
            out.setdefault(s.name, {})[frozenset(s.labels.items())] = s.value
    return out


def populate(dedupe: RunCli) -> None:
    dedupe("init")
    a, b = os.urandom(300_000), os.urandom(200_000)
    dedupe("backup", "stream", "db/one", "-", "--host", "web1", input=a)
    dedupe("backup", "stream", "db/one", "-", "--host", "web1", input=a + b)
    dedupe("backup", "stream", "db/one", "-", "--host", "web2", input=b)
    dedupe("backup", "stream", 'odd "group"\\x', "-", "--host", "web1", input=b[:5000])


def test_prometheus_output_parses_and_matches_stats_json(dedupe: RunCli) -> None:
    populate(dedupe)
    dedupe("check")
    m = parse(dedupe("stats", "--format", "prometheus").stdout.decode())
    st = json.loads(dedupe("stats", "--json").stdout)
    listed = json.loads(dedupe("list", "--json").stdout)
    assert json.loads(dedupe("stats", "--format", "json").stdout) == st

    for name, kind in m["_types"].items():
        assert name.startswith("dedupe_") and kind == "gauge", name
        assert m["_help"][name], name
        assert name.endswith(("_bytes", "_seconds", "_ratio", "_success", "_errors", "_packs", "backups", "_groups")), name

    def series(name: str, **labels: str) -> float:
        value: float = m[name][frozenset(labels.items())]
        return value

    # per series (group, host): the newest backup
    newest: dict[tuple[str, str], dict[str, Any]] = {}
    counts: dict[tuple[str, str], int] = {}
    for j in listed:
        key = (j["group"], j["host"])
        newest[key] = j  # list is oldest first
        counts[key] = counts.get(key, 0) + 1
    assert len(m["dedupe_backups"]) == len(newest) == 3
    for (group, host), j in newest.items():
        assert series("dedupe_backup_last_timestamp_seconds", group=group, host=host) == pytest.approx(j["time_ns"] / 1e9)
        assert series("dedupe_backup_last_original_bytes", group=group, host=host) == j["size"]
        assert series("dedupe_backup_last_new_bytes", group=group, host=host) == j["new_bytes"]
        assert series("dedupe_backup_last_new_stored_bytes", group=group, host=host) == j["new_stored"]
        assert series("dedupe_backup_last_stored_bytes", group=group, host=host) == j["stored_bytes"]
        assert 0 < series("dedupe_backup_last_duration_seconds", group=group, host=host) < 60
        assert series("dedupe_backups", group=group, host=host) == counts[(group, host)]
    # the odd group name survives escaping
    assert ('odd "group"\\x', "web1") in newest

    for scope, usages in (("group", st["groups"]), ("host", st["hosts"])):
        assert len(m[f"dedupe_{scope}_backups"]) == len(usages)
        for key, u in usages.items():
            for field in ("original", "deduplicated", "stored"):
                assert series(f"dedupe_{scope}_{field}_bytes", **{scope: key}) == u[field]
            assert series(f"dedupe_{scope}_backups", **{scope: key}) == u["backups"]
    total = st["total"]
    assert series("dedupe_repository_backups") == total["backups"] == 4
    assert series("dedupe_repository_groups") == 2
    for field in ("original", "deduplicated", "stored"):
        assert series(f"dedupe_repository_{field}_bytes") == total[field]
    assert series("dedupe_repository_deduplication_ratio") == pytest.approx(total["ratio"])
    assert series("dedupe_repository_pack_bytes") == st["repository_bytes"]
    assert series("dedupe_repository_unreferenced_bytes") == st["unreferenced_bytes"]

    # the check just run: structure, passed
    assert series("dedupe_check_last_success", scope="structure") == 1
    assert series("dedupe_check_last_errors", scope="structure") == 0
    assert abs(series("dedupe_check_last_timestamp_seconds", scope="structure") - series(
        "dedupe_metrics_timestamp_seconds")) < 120


def test_metrics_file_after_backup_check_and_prune(dedupe: RunCli, tmp_path: Path) -> None:
    populate(dedupe)
    prom = tmp_path / "textfile" / "dedupe.prom"
    prom.parent.mkdir()
    dedupe("backup", "stream", "db/three", "-", "--metrics-file", str(prom), input=b"x" * 1000)
    after_backup = parse(prom.read_text())
    assert after_backup["dedupe_repository_backups"][frozenset()] == 5
    assert oct(prom.stat().st_mode & 0o777) == "0o644"
    assert sorted(p.name for p in prom.parent.iterdir()) == ["dedupe.prom"]  # no temporary left behind

    dedupe("check", "--read-data", "--metrics-file", str(prom))
    checked = parse(prom.read_text())
    assert checked["dedupe_check_last_success"] == {frozenset({("scope", "read-data")}): 1}

    dedupe("prune", "--keep-last", "1", "--metrics-file", str(prom))
    pruned = parse(prom.read_text())
    assert pruned["dedupe_repository_backups"][frozenset()] == 4  # db/one on web1 lost its older backup
    assert pruned["dedupe_backups"][frozenset({("group", "db/one"), ("host", "web1")})] == 1
    assert pruned["dedupe_check_last_success"][frozenset({("scope", "read-data")})] == 1
    assert pruned["_types"] == checked["_types"]


def test_a_failed_check_is_in_the_metrics(dedupe: RunCli, repo_path: Path, tmp_path: Path) -> None:
    populate(dedupe)
    pack = next(p for p in (repo_path / "data").rglob("*") if p.is_file())
    pack.write_bytes(pack.read_bytes()[:-10])
    prom = tmp_path / "dedupe.prom"
    assert dedupe("check", "--metrics-file", str(prom), check=False).returncode == 25
    m = parse(prom.read_text())
    assert m["dedupe_check_last_success"] == {frozenset({("scope", "structure")}): 0}
    assert m["dedupe_check_last_damaged_packs"][frozenset({("scope", "structure")})] == 1


def test_an_unwritable_metrics_file_is_a_warning(dedupe: RunCli, tmp_path: Path) -> None:
    """The backup is committed; the metrics file that could not be written makes exit 3."""
    dedupe("init")
    p = dedupe("backup", "stream", "g", "-", "--metrics-file", str(tmp_path / "no" / "such.prom"), input=b"data",
               check=False)
    assert p.returncode == 3
    assert "metrics file" in p.stderr.decode() and "not written" in p.stderr.decode()
    assert len(json.loads(dedupe("list", "--json").stdout)) == 1
