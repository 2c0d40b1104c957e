"""``check --read-data-subset``: which packs each subset reads (dedupe.maintenance.check.DataSubset)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dedupe.maintenance.check import BadSubset, DataSubset

pack_names = st.sets(st.binary(min_size=32, max_size=32).map(bytes.hex), max_size=60)


@given(pack_names, st.integers(min_value=1, max_value=12))
def test_the_groups_of_t_partition_the_packs(names: set[str], t: int) -> None:
    groups = [DataSubset(n, t).choose(names) for n in range(1, t + 1)]
    assert set().union(*groups) == names
    assert sum(len(g) for g in groups) == len(names)  # disjoint
    assert groups == [DataSubset(n, t).choose(sorted(names)) for n in range(1, t + 1)]  # the same every time


@given(pack_names, st.floats(min_value=0.01, max_value=100))
def test_a_percentage_reads_that_share_and_at_least_one(names: set[str], percent: float) -> None:
    chosen = DataSubset(percent=percent).choose(names)
    assert chosen <= names
    assert len(chosen) == (min(len(names), max(1, round(len(names) * percent / 100))) if names else 0)


@pytest.mark.parametrize("spec,expected", [("1/7", DataSubset(1, 7)), (" 7/7 ", DataSubset(7, 7)),
                                           ("5%", DataSubset(percent=5.0)), ("100%", DataSubset(percent=100.0)),
                                           ("0.5%", DataSubset(percent=0.5))])
def test_parse(spec: str, expected: DataSubset) -> None:
    assert DataSubset.parse(spec) == expected
    assert DataSubset.parse(str(expected)) == expected


@pytest.mark.parametrize("spec", ["0/7", "8/7", "1/0", "-1/2", "1/2/3", "a/b", "0%", "150%", "x%", "", "7"])
def test_bad_specs(spec: str) -> None:
    with pytest.raises(BadSubset) as e:
        DataSubset.parse(spec)
    assert e.value.exit_code == 2 and repr(spec) in str(e.value)
