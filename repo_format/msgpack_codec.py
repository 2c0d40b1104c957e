"""Strict msgpack for stored structures (FORMAT.md section 1.4)."""

from __future__ import annotations

from typing import Any

import msgpack

from repo_format.errors import FormatError


def pack(obj: Any) -> bytes:
    return msgpack.packb(obj, use_bin_type=True)


def unpack(data: bytes | memoryview, what: str, max_len: int | None = None) -> Any:
    try:
        return msgpack.unpackb(data, raw=False, strict_map_key=False, use_list=True)
    except (ValueError, msgpack.UnpackException, TypeError) as e:
        raise FormatError(f"{what}: msgpack data is damaged ({e})") from None


def unpack_map(data: bytes | memoryview, what: str, required: tuple[str, ...]) -> dict[str, Any]:
    obj = unpack(data, what)
    if not isinstance(obj, dict):
        raise FormatError(f"{what}: expected a map, found {type(obj).__name__}")
    missing = [k for k in required if k not in obj]
    if missing:
        raise FormatError(f"{what}: missing fields {', '.join(missing)}")
    return obj
