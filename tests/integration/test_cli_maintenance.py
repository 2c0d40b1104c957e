"""prune, forget, protect, unprotect, gc and stats as a user runs them, errors included."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from dedupe_testing import RunCli, assert_clean_error

from repo_format import layout


def ids(dedupe: RunCli) -> list[str]:
    return [b["id"] for b in json.loads(dedupe("list", "--json").stdout)]


def make_backups(dedupe: RunCli) -> tuple[bytes, bytes]:
    dedupe("init")
    a, b = os.urandom(400_000), os.urandom(300_000)
    for data in (a, a, b):
        dedupe("backup", "stream", "db/one", "-", input=data)
    dedupe("backup", "stream", "db/two", "-", input=b[:1000])
    return a, b


def test_prune_dry_run_then_prune_and_gc(dedupe: RunCli, repo_path: Path) -> None:
    _, b = make_backups(dedupe)
    before = ids(dedupe)
    out = json.loads(dedupe("prune", "--keep-last", "1", "--dry-run", "--json").stdout)
    decisions = {d["id"]: d for d in out["backups"]}
    assert set(decisions) == set(before) and out["dry_run"]
    assert decisions[before[2]]["reasons"] == ["last 1"] and decisions[before[3]]["reasons"] == ["last 1"]
    assert not decisions[before[0]]["keep"] and not decisions[before[1]]["keep"]
    text = dedupe("prune", "--keep-last", "1", "--dry-run").stdout.decode()
    assert f"db/one on {os.uname().nodename}:" in text and text.count("  remove  ") == 2
    assert "would remove 2 of 4" in text
    assert ids(dedupe) == before  # a dry run changes nothing
    res = json.loads(dedupe("prune", "--keep-last", "1", "--json").stdout)
    assert sorted(res["removed"]) == sorted(before[:2])
    assert res["gc"]["freed"] >= 390_000  # a's chunks went
    assert ids(dedupe) == before[2:]
    assert dedupe("restore", before[2], "--stdout").stdout == b
    assert dedupe("check", "--read-data").returncode == 0


def test_prune_keeps_each_hosts_series(dedupe: RunCli, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two hosts back up the same group into one repository: --keep-last 1 keeps the
    newest backup of each host (restic's grouping), --group-by group the newest of all."""
    dedupe("init")
    for host in ("web1", "web2", "web1", "web2"):
        dedupe("backup", "stream", "lxd/default/instance/web", "-", "--host", host, input=os.urandom(50_000))
    monkeypatch.setenv("DEDUPE_HOST", "web3")  # the variable names the host as --host does
    dedupe("backup", "stream", "lxd/default/instance/web", "-", input=os.urandom(50_000))
    listed = json.loads(dedupe("list", "--json").stdout)
    assert [b["host"] for b in listed] == ["web1", "web2", "web1", "web2", "web3"]
    assert "web3" in dedupe("list").stdout.decode().splitlines()[-1]
    res = json.loads(dedupe("prune", "--keep-last", "1", "--no-gc", "--json").stdout)
    assert sorted(res["removed"]) == sorted(b["id"] for b in listed[:2])
    assert "would remove 2 of 3" in dedupe("prune", "--keep-last", "1", "--group-by", "group", "--dry-run").stdout.decode()
    bad = dedupe("prune", "--keep-last", "1", "--group-by", "nope", check=False)
    assert bad.returncode == 2 and b"Invalid value for '--group-by'" in bad.stderr  # click's usage error


def test_forget_protect_unprotect_gc(dedupe: RunCli) -> None:
    make_backups(dedupe)
    first, second = ids(dedupe)[:2]
    assert "is protected" in dedupe("protect", first[:8]).stdout.decode()
    assert_clean_error(dedupe("forget", first, check=False), 83, "protected", "unprotect")
    kept = json.loads(dedupe("prune", "--keep-last", "1", "--json").stdout)
    assert first not in kept["removed"] and second in kept["removed"]
    dedupe("unprotect", first)
    assert json.loads(dedupe("forget", first[:10], "--json").stdout)["removed"] == [first]
    dry = json.loads(dedupe("gc", "--dry-run", "--json").stdout)
    assert dry["dry_run"] and dry["freed"] >= 390_000
    done = json.loads(dedupe("gc", "--json").stdout)
    assert done["freed"] == dry["freed"]
    assert "gc freed 0 B" in dedupe("gc").stdout.decode()
    assert dedupe("check", "--read-data").returncode == 0
    assert_clean_error(dedupe("forget", "ffff", check=False), 30, "ffff")


def test_stats(dedupe: RunCli) -> None:
    make_backups(dedupe)
    st = json.loads(dedupe("stats", "--json").stdout)
    one, two = st["groups"]["db/one"], st["groups"]["db/two"]
    assert one["backups"] == 3 and one["original"] == 1_100_000
    assert 700_000 <= one["deduplicated"] < 720_000 and one["stored"] > 700_000  # random data: no compression
    assert 1.5 < one["ratio"] < 1.6 and two["backups"] == 1
    assert st["total"]["backups"] == 4 and st["unreferenced_bytes"] == 0
    only = {b["id"]: b for b in st["backups"]}
    first, second, third, fourth = ids(dedupe)
    assert only[first]["unique_bytes"] == only[second]["unique_bytes"] == 0  # a is in both
    assert only[third]["unique_bytes"] >= 290_000  # b, except what the 4th shares
    st_two = json.loads(dedupe("stats", "--group", "db/t*", "--json").stdout)
    assert list(st_two["groups"]) == ["db/two"] and [b["id"] for b in st_two["backups"]] == [fourth]
    text = dedupe("stats").stdout.decode()
    assert "db/one" in text and "total" in text and first[:12] in text


def test_stats_per_host(dedupe: RunCli) -> None:
    """Each host's backups are counted apart; content two hosts share counts for both."""
    dedupe("init")
    shared, own = os.urandom(6_000_000), os.urandom(1_000_000)  # several chunks each
    dedupe("backup", "stream", "db", "-", "--host", "alpha", input=shared)
    dedupe("backup", "stream", "db", "-", "--host", "beta", input=shared + own)
    st = json.loads(dedupe("stats", "--json").stdout)
    alpha, beta = st["hosts"]["alpha"], st["hosts"]["beta"]
    assert alpha["backups"] == 1 and alpha["original"] == 6_000_000
    assert beta["backups"] == 1 and beta["original"] == 7_000_000
    assert beta["deduplicated"] - alpha["deduplicated"] >= 500_000  # beta holds own as well
    assert alpha["deduplicated"] + beta["deduplicated"] > st["total"]["deduplicated"]  # shared, counted twice
    assert {b["host"] for b in st["backups"]} == {"alpha", "beta"}
    text = dedupe("stats").stdout.decode()
    assert "host alpha" in text and "host beta" in text and "db (beta)" in text


def test_bad_input(dedupe: RunCli) -> None:
    make_backups(dedupe)
    assert_clean_error(dedupe("prune", "--keep-daily", "-1", check=False), 80, "--keep-daily", "negative")
    assert_clean_error(dedupe("prune", "--keep-within", "3 days", check=False), 80, "malformed duration")
    assert_clean_error(dedupe("prune", "--keep-last", "1", "--group", "nope/*", check=False), 80,
                       "nope/*", "matches no group")
    assert_clean_error(dedupe("prune", check=False), 80, "no retention rule")
    assert_clean_error(dedupe("prune", "--keep-last", "0", "-g", "db/two", check=False), 81,
                       "db/two", "--force")
    assert len(ids(dedupe)) == 4
    assert "removed 1 of 1" in dedupe("prune", "--keep-last", "0", "-g", "db/two", "--force").stdout.decode()
    assert dedupe("gc", "--max-unused", "200%", check=False).returncode == 2


def test_prune_and_gc_refuse_a_damaged_repository(dedupe: RunCli, repo_path: Path) -> None:
    make_backups(dedupe)
    pack = next(p for p in (repo_path / layout.DATA_DIR).rglob("*") if p.is_file())
    pack.unlink()
    before = ids(dedupe)
    for args in (("prune", "--keep-last", "1"), ("gc",)):
        assert_clean_error(dedupe(*args, check=False), 82, "structure check", pack.name, "missing")
    assert ids(dedupe) == before
