"""Retention policy semantics (restic's forget rules), durations, group patterns."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dedupe.maintenance.prune import (
    RULES,
    Backup,
    BadPolicy,
    Duration,
    Policy,
    WouldRemoveAll,
    apply_policy,
    group_matches,
    parse_duration,
    plan,
)

UTC = dt.UTC


def at(text: str) -> int:
    return int(dt.datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp() * 1e9)


def backups(*times: str, group: str = "g", protected: tuple[int, ...] = ()) -> list[Backup]:
    return [Backup(f"{i:02d}" + "0" * 62, group, at(t), i in protected) for i, t in enumerate(times)]


def kept(policy: Policy, bs: list[Backup]) -> dict[str, list[str]]:
    """Kept backups (by time) with their reasons."""
    out = {}
    for d in apply_policy(policy, bs):
        if d.keep:
            out[dt.datetime.fromtimestamp(d.backup.time_ns / 1e9, UTC).strftime("%m-%d %H:%M")] = d.reasons
    return out


# The worked example of README "Retention": nightly backups at 03:00 from 1 to 20 January
# 2025 (a Wednesday), two on the 20th; --keep-daily 3 --keep-weekly 2 --keep-monthly 2.
NIGHTS = [f"2025-01-{d:02d} 03:00" for d in range(1, 21)] + ["2025-01-20 15:00"]


def test_worked_example() -> None:
    p = Policy(daily=3, weekly=2, monthly=2, tz=UTC)
    assert kept(p, backups(*NIGHTS)) == {
        "01-20 15:00": ["daily 3", "weekly 2", "monthly 2"],  # newest of its day, week and month
        "01-19 03:00": ["daily 3", "weekly 2"],  # Sunday: the newest of ISO week 3
        "01-18 03:00": ["daily 3"],
        "01-01 03:00": ["monthly 2 (oldest)"],  # only one month has backups: the oldest is kept too
    }


def test_keep_last_and_hourly() -> None:
    bs = backups("2025-03-01 10:05", "2025-03-01 10:40", "2025-03-01 11:10", "2025-03-01 13:00")
    assert kept(Policy(last=2, tz=UTC), bs) == {"03-01 13:00": ["last 2"], "03-01 11:10": ["last 2"]}
    assert kept(Policy(hourly=3, tz=UTC), bs) == {
        "03-01 13:00": ["hourly 3"], "03-01 11:10": ["hourly 3"], "03-01 10:40": ["hourly 3"]}


def test_weekly_uses_iso_weeks_and_yearly() -> None:
    # 2024-12-30 (Monday) belongs to ISO week 1 of 2025, like 2025-01-05 (Sunday).
    bs = backups("2024-12-29 12:00", "2024-12-30 12:00", "2025-01-05 12:00", "2025-01-06 12:00")
    assert kept(Policy(weekly=2, tz=UTC), bs) == {"01-06 12:00": ["weekly 2"], "01-05 12:00": ["weekly 2"]}
    assert kept(Policy(yearly=5, tz=UTC), bs) == {
        "01-06 12:00": ["yearly 5"], "12-30 12:00": ["yearly 5"], "12-29 12:00": ["yearly 5 (oldest)"]}


def test_keep_within_is_relative_to_the_newest_backup() -> None:
    bs = backups("2020-01-01 00:00", "2020-02-25 23:00", "2020-02-26 01:00", "2020-03-30 00:00")
    assert kept(Policy(within=parse_duration("1m3d"), tz=UTC), bs) == {
        "03-30 00:00": ["within 1m3d"], "02-26 01:00": ["within 1m3d"]}  # cutoff: 02-29 - 3d = 02-26 00:00
    # 31 March minus one month is 29 February (clamped), not 2 March
    assert Duration(months=1).before(dt.datetime(2020, 3, 31, tzinfo=UTC)) == dt.datetime(2020, 2, 29, tzinfo=UTC)
    assert Duration(years=1, weeks=1, hours=5).before(dt.datetime(2021, 1, 8, 6, tzinfo=UTC)) == \
        dt.datetime(2020, 1, 1, 1, tzinfo=UTC)


def test_protected_backups_are_kept_and_not_counted() -> None:
    bs = backups("2025-01-01 00:00", "2025-01-02 00:00", "2025-01-03 00:00", protected=(2,))
    assert kept(Policy(last=1, tz=UTC), bs) == {"01-03 00:00": ["protected"], "01-02 00:00": ["last 1"]}


@pytest.mark.parametrize("text,expected", [
    ("1y2m3w4d5h", Duration(1, 2, 3, 4, 5)), ("36h", Duration(hours=36)), ("2W", Duration(weeks=2)),
    ("10d", Duration(days=10)), ("1y1d", Duration(years=1, days=1))])
def test_durations(text: str, expected: Duration) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "1", "d", "1x", "1d1d", "1d1y", "-1d", "1.5d", "1 d", "y1"])
def test_malformed_durations(text: str) -> None:
    with pytest.raises(BadPolicy, match="malformed duration"):
        parse_duration(text)


def test_bad_policies() -> None:
    with pytest.raises(BadPolicy, match="must not be negative"):
        Policy(daily=-1)
    bs = backups("2025-01-01 00:00")
    with pytest.raises(BadPolicy, match="no retention rule"):
        plan(bs, Policy(), [])
    with pytest.raises(WouldRemoveAll, match="would remove all 1 backup"):
        plan(bs, Policy(last=0), [])
    assert plan(bs, Policy(last=0), [], force=True).remove == [bs[0].id]
    with pytest.raises(BadPolicy, match="matches no group"):
        plan(bs, Policy(last=1), ["nope*"])


def test_group_patterns() -> None:
    assert group_matches("lxd/*/instance/*", "lxd/default/instance/c1")
    assert not group_matches("lxd/*/instance/*", "lxd/default/image/abc")
    assert group_matches("lxd/default", "lxd/default/instance/c1")  # no glob: the groups below too
    assert not group_matches("lxd/def", "lxd/default/instance/c1")
    bs = backups("2025-01-01 00:00", group="a/x") + backups("2025-01-01 00:00", "2025-01-02 00:00", group="b")
    p = plan(bs, Policy(last=1, tz=UTC), ["b"])
    assert {d.backup.group for d in p.decisions} == {"b"} and len(p.remove) == 1


def test_each_host_is_its_own_series() -> None:
    """Two hosts backing up the same group into one repository: the rules apply to each
    host's backups on their own (restic's default grouping by host), unless told to merge."""
    a = [Backup(f"a{i:063x}", "lxd/default/instance/web", at(f"2025-01-0{i + 1} 03:00"), host="a") for i in range(3)]
    b = [Backup(f"b{i:063x}", "lxd/default/instance/web", at(f"2025-01-0{i + 1} 04:00"), host="b") for i in range(2)]
    per_host = plan(a + b, Policy(last=1, tz=UTC), [])
    assert sorted(per_host.remove) == sorted([a[0].id, a[1].id, b[0].id])  # the newest of each host stays
    merged = plan(a + b, Policy(last=1, tz=UTC), [], group_by="group")
    assert sorted(merged.remove) == sorted([x.id for x in a + b if x is not a[2]])  # a on the 3rd is newest
    with pytest.raises(WouldRemoveAll, match="of group lxd/default/instance/web on b;"):
        plan(b, Policy(last=0), [])
    with pytest.raises(BadPolicy, match="--group-by 'hostname'"):
        plan(a, Policy(last=1), [], group_by="hostname")


# -- properties -----------------------------------------------------------------------------

times = st.lists(st.integers(min_value=at("2015-01-01 00:00"), max_value=at("2026-01-01 00:00")),
                 min_size=0, max_size=60, unique=True)
counts = st.one_of(st.none(), st.integers(min_value=0, max_value=12))


@st.composite
def policies(draw: st.DrawFn) -> Policy:
    within = draw(st.one_of(st.none(), st.builds(Duration, *(st.integers(0, 3) for _ in range(5)))))
    return Policy(**{r: draw(counts) for r in RULES}, within=within, tz=UTC)


def make(ts: list[int], prot: set[int]) -> list[Backup]:
    return [Backup(f"{i:064x}", "g", t, i in prot) for i, t in enumerate(ts)]


@given(times, st.integers(min_value=0, max_value=70))
def test_keep_last_keeps_exactly_the_n_newest(ts: list[int], n: int) -> None:
    ds = apply_policy(Policy(last=n), make(ts, set()))
    assert {d.backup.time_ns for d in ds if d.keep} == set(sorted(ts, reverse=True)[:n])


@settings(max_examples=200)
@given(times, policies(), st.sets(st.integers(0, 59)))
def test_protected_never_removed_and_every_kept_backup_is_explained(ts: list[int], p: Policy,
                                                                    prot: set[int]) -> None:
    bs = make(ts, prot)
    ds = apply_policy(p, bs)
    assert sorted(d.backup.id for d in ds) == sorted(b.id for b in bs)
    for d in ds:
        if d.backup.protected:
            assert d.keep and d.reasons == ["protected"]
        for r in d.reasons:
            rule = r.split()[0]
            assert rule == "protected" or rule in RULES or rule == "within"
            if rule in RULES:
                assert p.count(rule) > 0
            if rule == "within":
                assert p.within is not None
    rated = [d for d in ds if not d.backup.protected]
    if rated and (p.within is not None or any(p.count(r) for r in RULES)):
        assert rated[0].keep  # any non-empty rule keeps the newest backup


@given(times, st.integers(1, 10))
def test_daily_keeps_one_per_day_for_n_days(ts: list[int], n: int) -> None:
    ds = apply_policy(Policy(daily=n, tz=UTC), make(ts, set()))
    days = [dt.datetime.fromtimestamp(d.backup.time_ns / 1e9, UTC).date() for d in ds if f"daily {n}" in d.reasons]
    assert len(days) == len(set(days)) == min(n, len({dt.datetime.fromtimestamp(t / 1e9, UTC).date() for t in ts}))
