"""The retention rules of a prune policy are built in one place (api.prune_rules): the
``prune`` command builds them from its options, and the web UI's "what would prune
keep now" from the policy that command recorded; both read the same dict."""

from __future__ import annotations

import pytest

from dedupe import api
from dedupe.maintenance.prune import BadPolicy, Policy, parse_duration


def test_prune_rules_from_a_recorded_policy() -> None:
    recorded = {"keep_last": 3, "keep_hourly": None, "keep_daily": 7, "keep_weekly": None, "keep_monthly": 2,
                "keep_yearly": 1, "keep_within": "2w", "groups": ["web-*"], "group_by": "group"}
    assert api.prune_rules(recorded) == Policy(last=3, daily=7, monthly=2, yearly=1, within=parse_duration("2w"))
    assert api.prune_rules(recorded).describe() == "last 3, daily 7, monthly 2, yearly 1, within 2w"


def test_prune_rules_without_rules_and_from_an_older_record() -> None:
    assert api.prune_rules({}) == Policy()
    assert api.prune_rules({"keep_within": None, "keep_last": 1}) == Policy(last=1)


def test_a_bad_duration_is_bad_policy() -> None:
    with pytest.raises(BadPolicy, match="malformed duration"):
        api.prune_rules({"keep_within": "soon"})
    with pytest.raises(BadPolicy):
        api.prune_rules({"keep_within": ""})  # as `prune --keep-within ""` always was
