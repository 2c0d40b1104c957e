"""Sparse members: the segment maps of GNU's old ``S`` headers and of PAX sparse formats
0.0, 0.1 and 1.0 (whose map is read at the start of the data), each checked."""

from __future__ import annotations

from dedupe.entries import FILE
from dedupe.sources.tarstream.errors import (
    BadFieldError, BadSparseMapError, ExtensionTooLargeError, ImpossibleSizeError, TruncatedTarError
)
from dedupe.sources.tarstream.fields import (
    BLOCK, _DECIMAL_RE, _GNU_SPARSE, _HEADER_ONLY, _INT64_MAX, _MAX_MAP_NUMBER, MAX_SPARSE_SEGMENTS, _number
)
from dedupe.sources.tarstream.pax import _pax_decimal
from dedupe.sources.tarstream.input import _Input, _Pending


def member_sparse(inp: _Input, block: bytes, typeflag: bytes, etype: str, pax: dict[str, bytes], data_size: int,
                  where_m: str, pending: _Pending) -> tuple[list[tuple[int, int]] | None, int, int, bytes]:
    """A member's sparse map, whichever of the four GNU formats it is in: the segments
    (None when the member is not sparse), the apparent size, how many bytes at the start
    of the data are the map (PAX 1.0) and those bytes, read ahead."""
    sparse: list[tuple[int, int]] | None = None
    apparent = data_size
    data_prefix = 0
    prefetched = b""
    if typeflag == _GNU_SPARSE:
        segments, apparent = old_gnu_sparse(inp, block, where_m, pending)
        sparse = _check_sparse(segments, apparent, data_size, where_m)
    elif etype == FILE and typeflag not in _HEADER_ONLY:
        if "GNU.sparse.map" in pax:  # 0.1
            apparent = _pax_decimal(pax.get("GNU.sparse.size", b""), "GNU.sparse.size", where_m,
                                    ImpossibleSizeError)
            if pax["GNU.sparse.map"].count(b",") >= 2 * MAX_SPARSE_SEGMENTS:
                raise ExtensionTooLargeError(f"{where_m}: more than {MAX_SPARSE_SEGMENTS} sparse segments")
            numbers = pax["GNU.sparse.map"].split(b",") if pax["GNU.sparse.map"] else []
            segments = _pairs(numbers, "GNU.sparse.map", where_m)
            _check_numblocks(pax, len(segments), where_m)
            sparse = _check_sparse(segments, apparent, data_size, where_m)
        elif "GNU.sparse.size" in pax:  # 0.0
            apparent = _pax_decimal(pax["GNU.sparse.size"], "GNU.sparse.size", where_m, ImpossibleSizeError)
            if len(pending.sparse_offsets) != len(pending.sparse_numbytes):
                raise BadSparseMapError(
                    f"{where_m}: {len(pending.sparse_offsets)} GNU.sparse.offset records but "
                    f"{len(pending.sparse_numbytes)} GNU.sparse.numbytes records")
            numbers = [n for pair in zip(pending.sparse_offsets, pending.sparse_numbytes) for n in pair]
            segments = _pairs(numbers, "GNU.sparse.offset/numbytes", where_m)
            _check_numblocks(pax, len(segments), where_m)
            sparse = _check_sparse(segments, apparent, data_size, where_m)
        elif pax.get("GNU.sparse.major") == b"1" and pax.get("GNU.sparse.minor") == b"0":
            realsize = pax.get("GNU.sparse.realsize", pax.get("GNU.sparse.size", b""))
            apparent = _pax_decimal(realsize, "GNU.sparse.realsize", where_m, ImpossibleSizeError)
            segments, prefetched = pax_sparse_map(inp, data_size, where_m)
            data_prefix = len(prefetched)
            sparse = _check_sparse(segments, apparent, data_size - data_prefix, where_m)
        elif "GNU.sparse.major" in pax or "GNU.sparse.minor" in pax:
            raise BadSparseMapError(
                f"{where_m}: unsupported GNU sparse format "
                f"{pax.get('GNU.sparse.major', b'?')!r}.{pax.get('GNU.sparse.minor', b'?')!r}")
    return sparse, apparent, data_prefix, prefetched


def old_gnu_sparse(inp: _Input, block: bytes, where: str, pending: _Pending) -> tuple[list[tuple[int, int]], int]:
    segments = _gnu_sparse_structs(block, 386, 4, where)
    apparent = _number(block[483:495], "realsize", where)
    extended = block[482]
    while extended:
        ext_offset = inp.offset
        ext = inp.read_upto(BLOCK)
        if len(ext) < BLOCK:
            raise TruncatedTarError(
                f"{where}: stream ends inside a GNU sparse extension block at byte offset {ext_offset}")
        pending.add(ext)
        segments += _gnu_sparse_structs(ext, 0, 21, where)
        if len(segments) > MAX_SPARSE_SEGMENTS:
            raise ExtensionTooLargeError(f"{where}: more than {MAX_SPARSE_SEGMENTS} sparse segments")
        extended = ext[504]
    return segments, apparent


def pax_sparse_map(inp: _Input, data_size: int, where: str) -> tuple[list[tuple[int, int]], bytes]:
    """Read the PAX 1.0 sparse map at the start of the data; return it and the blocks read.

    The map is decimal numbers, one per line: the count of segments, then offset and
    length of each; it is padded with NULs to a 512 boundary.
    """
    text = bytearray()
    values: list[int] = []
    count: int | None = None
    pos = 0  # start of the next number in text
    while count is None or len(values) < 2 * count:
        nl = text.find(b"\n", pos, pos + _MAX_MAP_NUMBER + 1)
        if nl < 0:
            if len(text) - pos > _MAX_MAP_NUMBER:
                raise BadSparseMapError(
                    f"{where}: PAX 1.0 sparse map holds {bytes(text[pos:pos + 24])!r}..., not a number")
            if len(text) + BLOCK > data_size:
                raise BadSparseMapError(f"{where}: the PAX 1.0 sparse map runs past the member's data")
            block_offset = inp.offset
            block = inp.read_upto(BLOCK)
            if len(block) < BLOCK:
                raise TruncatedTarError(
                    f"{where} claims {data_size} bytes, stream ends after {len(text) + len(block)} "
                    f"(inside its sparse map, at byte offset {block_offset + len(block)})")
            text += block
            continue
        number = bytes(text[pos:nl])
        pos = nl + 1
        if not _DECIMAL_RE.match(number):
            raise BadSparseMapError(f"{where}: PAX 1.0 sparse map holds {number!r}, not a decimal number")
        if count is None:
            count = int(number)
            if count > MAX_SPARSE_SEGMENTS:
                raise ExtensionTooLargeError(
                    f"{where}: PAX 1.0 sparse map claims {count} segments, more than {MAX_SPARSE_SEGMENTS}")
        else:
            values.append(int(number))
    return list(zip(values[::2], values[1::2])), bytes(text)


def _gnu_sparse_structs(block: bytes, start: int, count: int, where: str) -> list[tuple[int, int]]:
    segments: list[tuple[int, int]] = []
    for index in range(count):
        pos = start + 24 * index
        offset_field, numbytes_field = block[pos:pos + 12], block[pos + 12:pos + 24]
        if numbytes_field[0] == 0 and offset_field[0] == 0:
            break
        try:
            segments.append((_number(offset_field, "sparse offset", where),
                             _number(numbytes_field, "sparse numbytes", where)))
        except BadFieldError as error:
            raise BadSparseMapError(str(error)) from None
    return segments


def _pairs(numbers: list[bytes], label: str, where: str) -> list[tuple[int, int]]:
    if len(numbers) % 2:
        raise BadSparseMapError(f"{where}: {label} has an odd count of numbers ({len(numbers)})")
    values = []
    for number in numbers:
        if not _DECIMAL_RE.match(number):
            raise BadSparseMapError(f"{where}: {label} holds {number[:40]!r}, not a decimal number")
        values.append(int(number))
    return list(zip(values[::2], values[1::2]))


def _check_numblocks(pax: dict[str, bytes], count: int, where: str) -> None:
    if "GNU.sparse.numblocks" in pax:
        declared = _pax_decimal(pax["GNU.sparse.numblocks"], "GNU.sparse.numblocks", where)
        if declared != count:
            raise BadSparseMapError(f"{where}: GNU.sparse.numblocks={declared} but the map has {count} segments")


def _check_sparse(segments: list[tuple[int, int]], apparent: int, packed: int, where: str) -> list[tuple[int, int]]:
    """The data segments (zero-length ones dropped), checked against the sizes."""
    if not 0 <= apparent <= _INT64_MAX:
        raise ImpossibleSizeError(f"{where}: sparse file size {apparent} is out of range")
    out: list[tuple[int, int]] = []
    position = 0
    total = 0
    for offset, length in segments:
        if offset < position or length < 0 or offset + length > apparent:
            raise BadSparseMapError(
                f"{where}: sparse segment ({offset}, {length}) overlaps, is out of order or ends past the "
                f"file size {apparent}")
        if length:
            out.append((offset, length))
            position = offset + length
            total += length
    if total != packed:
        raise BadSparseMapError(
            f"{where}: sparse map holds {total} bytes of data but the member stores {packed}")
    return out
