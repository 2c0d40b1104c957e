"""Lock files (FORMAT.md section 10)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from repo_format import header, msgpack_codec

VERSION: Final = 1
SUPPORTED_VERSIONS: Final = (1,)


@dataclass(frozen=True)
class LockRecord:
    exclusive: bool
    host: str
    pid: int
    pid_start: int  # process start time in clock ticks since boot (Linux /proc/<pid>/stat field 22); 0 if unknown
    boot_id: str  # /proc/sys/kernel/random/boot_id, so a reboot makes old locks of this host stale
    time_ns: int  # creation or last refresh
    purpose: str


def encode(lock: LockRecord) -> bytes:
    body = {"exclusive": lock.exclusive, "host": lock.host, "pid": lock.pid, "pid_start": lock.pid_start,
            "boot_id": lock.boot_id, "time_ns": lock.time_ns, "purpose": lock.purpose}
    return header.encode_header(header.LOCK_MAGIC, VERSION) + msgpack_codec.pack(body)


def decode(data: bytes, what: str) -> LockRecord:
    header.decode_header(data, header.LOCK_MAGIC, SUPPORTED_VERSIONS, what)
    b = msgpack_codec.unpack_map(memoryview(data)[header.HEADER_LEN:], what,
                                 ("exclusive", "host", "pid", "pid_start", "boot_id", "time_ns", "purpose"))
    return LockRecord(bool(b["exclusive"]), str(b["host"]), int(b["pid"]), int(b["pid_start"]),
                      str(b["boot_id"]), int(b["time_ns"]), str(b["purpose"]))
