"""Pure pieces of issue #16: which series an instance-only LXD backup counts in, the
status line's redraw limit, and which volumes an instance record attaches."""

from __future__ import annotations

import io
from dataclasses import dataclass

import pytest

from dedupe.cli import common
from dedupe.lxd.api.records import attached_volumes
from dedupe.maintenance.series import series_group, series_of
from dedupe.progress import Progress


def test_older_instance_only_backups_count_in_the_instance_only_series() -> None:
    only = {"lxd": {"instance_only": True}}
    assert series_group("lxd/web/instance/c1", only) == "lxd/web/instance-only/c1"
    assert series_group("lxd/web/volume/default/v1", only) == "lxd/web/volume-only/default/v1"
    assert series_group("lxd/web/instance-only/c1", only) == "lxd/web/instance-only/c1"
    assert series_group("lxd/web/instance/c1", {"lxd": {"instance_only": False}}) == "lxd/web/instance/c1"
    assert series_group("host/etc", {}) == "host/etc"

    @dataclass
    class B:
        host: str = "h"
        group: str = "lxd/web/instance/c1"
        series: str = ""

    assert series_of(B(), "host,group") == ("h", "lxd/web/instance/c1")
    assert series_of(B(series="lxd/web/instance-only/c1"), "group") == ("", "lxd/web/instance-only/c1")


def test_the_status_line_redraws_at_most_every_tenth_of_a_second(monkeypatch: pytest.MonkeyPatch) -> None:
    err = io.StringIO()
    now = [100.0]
    monkeypatch.setattr(common.sys, "stderr", err)
    monkeypatch.setattr(common.time, "monotonic", lambda: now[0])
    line = common.StatusLine()
    for i in range(1000):  # 1000 updates in one second
        now[0] += 0.001
        line(Progress("restore", "a", i, 10_000))
    assert 9 <= err.getvalue().count("\r\033[K") <= 11
    line(Progress("restore", "b", 1, 10_000))  # a new object: drawn at once
    line(Progress("restore", "b", 10_000, 10_000))  # complete: drawn at once
    assert err.getvalue().count("restore b") == 2
    assert "restore b  9.8 KiB / 9.8 KiB (100%)" in err.getvalue().rsplit("\r", 1)[-1]


def test_attached_volumes_are_custom_volume_disks_only() -> None:
    record = {"expanded_devices": {
        "root": {"type": "disk", "path": "/", "pool": "default"},
        "data": {"type": "disk", "path": "/mnt", "pool": "default", "source": "vol1"},
        "host": {"type": "disk", "path": "/h", "source": "/srv/h"},
        "eth0": {"type": "nic", "network": "br0"},
    }}
    assert attached_volumes(record) == [("default", "vol1")]
