"""The parsers of command-line values (durations, percentages, compression specs) meet
whatever a user or a script types: each either returns a usable value or refuses with
its documented error; never an OverflowError or a ValueError (exit 1). Issue #18, point 5."""

from __future__ import annotations

import datetime as dt

import click
from hypothesis import given, settings
from hypothesis import strategies as st

from dedupe.cli.common import CompressionSpec
from dedupe.cli.maintenance import _percent
from dedupe.maintenance.prune import BadPolicy, parse_duration

_DURATION_TEXT = st.one_of(
    st.text(max_size=40),
    st.lists(st.tuples(st.integers(min_value=0, max_value=10 ** 30), st.sampled_from("ymwdh")), max_size=6)
    .map(lambda parts: "".join(f"{n}{u}" for n, u in parts)),
)


@given(_DURATION_TEXT)
@settings(max_examples=400, deadline=None)
def test_a_duration_parses_to_a_usable_value_or_is_a_bad_policy(text: str) -> None:
    try:
        d = parse_duration(text)
    except BadPolicy as e:
        assert e.exit_code == 80
        return
    for now in (dt.datetime(2026, 12, 7, tzinfo=dt.timezone.utc), dt.datetime(1, 1, 1), dt.datetime(9999, 12, 31)):
        assert d.before(now) <= now


@given(st.text(max_size=30))
@settings(max_examples=300, deadline=None)
def test_a_percentage_parses_to_a_fraction_or_is_a_usage_error(text: str) -> None:
    try:
        f = _percent(text)
    except click.BadParameter:
        return
    assert 0 <= f <= 1


@given(st.one_of(st.text(max_size=30), st.text(max_size=4).map(lambda t: f"zstd,{t}"),
                 st.sampled_from(["zstd,\u00b2", "zstd,\u0663", "zstd,\uff13"]), st.integers(min_value=-(10 ** 30), max_value=10 ** 30).map(lambda n: f"zstd,{n}")))
@settings(max_examples=300, deadline=None)
def test_a_compression_spec_is_a_level_or_a_usage_error(text: str) -> None:
    try:
        level = CompressionSpec().convert(text, None, None)
    except click.BadParameter:
        return
    assert 0 <= level <= 22
