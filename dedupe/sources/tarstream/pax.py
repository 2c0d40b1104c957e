"""PAX extended headers: records parsed, values read (decimal numbers, times with
fractions), and extended attributes and ACLs taken from ``SCHILY``/``LIBARCHIVE`` records."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from urllib.parse import unquote_to_bytes

from dedupe import acl
from dedupe.sources.tarstream.errors import BadFieldError, BadPaxRecordError, ExtensionTooLargeError, TarStreamError
from dedupe.sources.tarstream.fields import (
    _ACL_BINARY_MAGIC, _DECIMAL_RE, _INT64_MAX, MAX_PAX_KEYS, _TIME_RE, _XATTR_PREFIXES, _number, _text
)


def _pax_decimal(value: bytes, label: str, where: str,
                 out_of_range: type[TarStreamError] = BadFieldError) -> int:
    if not _DECIMAL_RE.match(value):
        if value.isdigit():
            raise out_of_range(f"{where}: pax {label} has {len(value)} digits, out of range")
        raise BadPaxRecordError(f"{where}: pax {label}={value[:40]!r} is not a decimal number")
    number = int(value)
    if number > _INT64_MAX:
        raise out_of_range(f"{where}: pax {label}={number} is out of range")
    return number


def _pax_or_field(pax: dict[str, bytes], key: str, field: bytes, where: str) -> int:
    if key in pax:
        return _pax_decimal(pax[key], key, where)
    value = _number(field, key, where)
    if not 0 <= value <= _INT64_MAX:
        raise BadFieldError(f"{where}: {key} {value} is out of range")
    return value


def _pax_time(value: bytes, label: str, where: str) -> int:
    """Seconds as decimal text -> ns, truncated toward zero, exactly (integer arithmetic).

    An exponent (``1e-05``, ``5e-324``: Python's tarfile writes ``str(float)``) is accepted.
    """
    match = _TIME_RE.match(value)
    if match is None:
        raise BadPaxRecordError(f"{where}: pax {label}={value[:40]!r} is not a decimal time")
    sign, whole, frac, exponent = match.groups()
    if exponent is None:
        ns = int(whole) * 1_000_000_000 + int((frac or b"")[:9].ljust(9, b"0"))
    else:  # digits beyond 9 + 999 places after the point are below a nanosecond
        digits = (frac or b"")[:1100]
        shift = 9 + int(exponent) - len(digits)
        mantissa = int(whole + digits)
        ns = mantissa * 10**shift if shift >= 0 else mantissa // 10**-shift
    return -ns if sign else ns


def _deletes(key: str, value: bytes) -> bool:
    """An empty pax value deletes the keyword (POSIX), except an xattr's: it is an empty value."""
    return not value and not key.startswith(_XATTR_PREFIXES)


def _check_keys(records: dict[str, bytes], where: str) -> None:
    if len(records) > MAX_PAX_KEYS:
        raise ExtensionTooLargeError(f"pax header at {where}: more than {MAX_PAX_KEYS} distinct keywords")


def _iter_pax(data: bytes, where: str) -> Iterator[tuple[str, bytes]]:
    """The records of a pax extended header, in order: ``"%d %s=%s\\n"``."""
    pos = 0
    end = len(data)
    while pos < end:
        if data[pos] == 0 and data.count(0, pos) == end - pos:
            break  # NUL padding after the last record
        space = data.find(b" ", pos, min(end, pos + 21))
        length_field = data[pos:space] if space > pos else data[pos:pos + 20]
        if space <= pos or not _DECIMAL_RE.match(length_field):
            raise BadPaxRecordError(
                f"pax header at {where}: record at byte {pos} of its data has a bad length field "
                f"{length_field!r}")
        length = int(length_field)
        stop = pos + length
        if stop > end or stop <= space + 2 or data[stop - 1] != 0x0A:
            raise BadPaxRecordError(
                f"pax header at {where}: record at byte {pos} of its data has a bad length {length} "
                f"({end - pos} bytes left in the header)")
        equals = data.find(b"=", space + 1, stop - 1)
        if equals <= space + 1:
            raise BadPaxRecordError(f"pax header at {where}: record at byte {pos} of its data has no keyword=value")
        yield _text(data[space + 1:equals]), data[equals + 1:stop - 1]
        pos = stop


def _xattrs(pax: dict[str, bytes], where: str) -> dict[str, bytes]:
    xattrs: dict[str, bytes] = {}
    for key, value in pax.items():
        if key.startswith("LIBARCHIVE.xattr."):
            name = _text(unquote_to_bytes(key[len("LIBARCHIVE.xattr."):]))
            try:
                decoded = base64.b64decode(value + b"=" * (-len(value) % 4), validate=True)
            except ValueError:
                raise BadPaxRecordError(f"{where}: pax {key} is not base64") from None
            xattrs.setdefault(name, decoded)
    for key, value in pax.items():
        if key.startswith("SCHILY.xattr."):
            xattrs[key[len("SCHILY.xattr."):]] = value
    for key, name in (("SCHILY.acl.access", acl.ACCESS_XATTR), ("SCHILY.acl.default", acl.DEFAULT_XATTR)):
        acl_value = pax.get(key)
        if not acl_value or name in xattrs:  # GNU tar also writes the binary value as SCHILY.xattr.system.*
            continue
        if acl_value.startswith(_ACL_BINARY_MAGIC):
            xattrs[name] = acl_value
            continue
        try:
            binary = acl.text_to_xattr(acl_value.decode("utf-8"))
            minimal = acl.is_minimal(binary)
        except (acl.AclError, ValueError) as error:  # ValueError: not UTF-8, a NUL in a name
            raise BadPaxRecordError(f"{where}: pax {key}: {error}") from None
        if name == acl.ACCESS_XATTR and minimal:
            continue
        xattrs[name] = binary
    return xattrs
