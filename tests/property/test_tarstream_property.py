"""Hypothesis: tarfile-written archives round-trip through TarReader byte for byte and field for field,
and no input, however cut or damaged, makes it raise anything but its own typed errors."""

from __future__ import annotations

import io
import os
import tarfile
from dataclasses import dataclass, field
from decimal import ROUND_DOWN, Decimal
from typing import Final, Literal

from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st

from dedupe.entries import BLOCKDEV, CHARDEV, DIR, FIFO, FILE, HARDLINK, SYMLINK, Entry
from dedupe.sources.tarstream import TarMember, TarReader, TarStreamError, normalize_path

Format = Literal[0, 1, 2]
USTAR: Final = tarfile.USTAR_FORMAT
GNU: Final = tarfile.GNU_FORMAT
PAX: Final = tarfile.PAX_FORMAT
TYPES = {tarfile.REGTYPE: FILE, tarfile.AREGTYPE: FILE, tarfile.CONTTYPE: FILE, tarfile.DIRTYPE: DIR,
         tarfile.SYMTYPE: SYMLINK, tarfile.LNKTYPE: HARDLINK, tarfile.CHRTYPE: CHARDEV, tarfile.BLKTYPE: BLOCKDEV,
         tarfile.FIFOTYPE: FIFO}
REGULAR = (tarfile.REGTYPE, tarfile.AREGTYPE, tarfile.CONTTYPE)
SCALE = int(os.environ.get("TARSTREAM_FUZZ_SCALE", "1"))  # e.g. 20 for a long fuzzing run
SLOW_OK = [HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.large_base_example]


class Chunked(io.RawIOBase):
    """Returns reads in the given sizes, in turn (like a pipe)."""

    def __init__(self, data: bytes, steps: list[int]) -> None:
        self._data = data
        self._pos = 0
        self._steps = steps
        self._turn = 0

    def read(self, n: int = -1) -> bytes:
        step = self._steps[self._turn % len(self._steps)]
        self._turn += 1
        n = len(self._data) if n < 0 else n
        piece = self._data[self._pos:self._pos + min(n, step)]
        self._pos += len(piece)
        return piece


class Archive(bytes):
    """Archive bytes with a short repr, so a failing example stays readable."""

    def __repr__(self) -> str:
        return f"<archive of {len(self)} bytes: {bytes(self[:64])!r}...>"


@dataclass
class Spec:
    info: tarfile.TarInfo
    data: bytes
    xattrs: dict[str, bytes] = field(default_factory=dict)
    mtime_text: str | None = None  # what tarfile writes for a float mtime


component = st.one_of(
    st.text(st.characters(codec="utf-8", exclude_characters="/\x00"), min_size=1, max_size=30),
    st.text("abc.-_ ", min_size=1, max_size=60),
    st.binary(min_size=1, max_size=20).map(lambda b: os.fsdecode(b.replace(b"/", b"_").replace(b"\0", b"_"))),
)
names = st.builds(lambda prefix, parts: prefix + "/".join(parts), st.sampled_from(["", "", "", "./", "/", "../"]),
                  st.lists(component, min_size=1, max_size=5))
owner_names = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=12)
xattr_names = st.text(st.characters(codec="utf-8", exclude_characters="=\x00"), min_size=1,
                      max_size=20)


@st.composite
def specs(draw: st.DrawFn, fmt: Format) -> Spec:
    kind = draw(st.sampled_from(list(TYPES)))
    info = tarfile.TarInfo(draw(names))
    info.type = kind
    data = draw(st.binary(max_size=1500)) if kind in REGULAR else b""
    info.size = len(data)
    info.mode = draw(st.integers(0, 0o7777))
    big = fmt != USTAR
    info.uid = draw(st.integers(0, 2**40 if big else 8**7 - 1))
    info.gid = draw(st.integers(0, 2**40 if big else 8**7 - 1))
    if fmt == PAX:
        info.uname, info.gname = draw(owner_names), draw(owner_names)
    else:
        info.uname = draw(owner_names.filter(lambda s: len(s.encode()) <= 32))
        info.gname = draw(owner_names.filter(lambda s: len(s.encode()) <= 32))
    spec = Spec(info, data)
    if fmt == GNU:
        info.mtime = draw(st.integers(-(2**33), 2**34))
    elif fmt == USTAR:
        info.mtime = draw(st.integers(0, 8**11 - 1))
    else:
        mtime = draw(st.one_of(st.integers(-(2**33), 2**34),
                               st.floats(-(2.0**33), 2.0**34, allow_nan=False, allow_infinity=False)))
        info.mtime = mtime
        if isinstance(mtime, float):
            spec.mtime_text = str(mtime)
    if kind in (tarfile.SYMTYPE, tarfile.LNKTYPE):
        info.linkname = draw(names)
    if kind in (tarfile.CHRTYPE, tarfile.BLKTYPE):
        info.devmajor = draw(st.integers(0, 8**7 - 1))
        info.devminor = draw(st.integers(0, 8**7 - 1))
    if fmt == PAX:
        xattrs = draw(st.dictionaries(xattr_names, st.text(max_size=30), max_size=3))
        info.pax_headers = {f"SCHILY.xattr.user.{k}": v for k, v in xattrs.items()}
        spec.xattrs = {f"user.{k}": v.encode() for k, v in xattrs.items()}
    return spec


@st.composite
def archives(draw: st.DrawFn) -> tuple[int, list[Spec], dict[str, bytes], bytes]:
    fmt: Format = draw(st.sampled_from([USTAR, GNU, PAX]))
    members = draw(st.lists(specs(fmt), max_size=8))
    global_xattrs: dict[str, bytes] = {}
    pax_headers: dict[str, str] = {}
    if fmt == PAX and draw(st.booleans()):
        values = draw(st.dictionaries(xattr_names, st.text(min_size=1, max_size=10), max_size=2))
        pax_headers = {f"SCHILY.xattr.user.{k}": v for k, v in values.items()}
        pax_headers["comment"] = draw(st.text(max_size=20))
        global_xattrs = {f"user.{k}": v.encode() for k, v in values.items()}
    buf = io.BytesIO()
    try:
        with tarfile.open(fileobj=buf, mode="w", format=fmt, pax_headers=pax_headers, encoding="utf-8",
                          errors="surrogateescape") as tar:
            for spec in members:
                tar.addfile(spec.info, io.BytesIO(spec.data) if spec.info.isreg() else None)
            end_of_members = tar.offset
    except ValueError:  # USTAR: a name or link target does not fit
        assume(False)
    data = buf.getvalue()
    keep = draw(st.sampled_from([len(data), end_of_members, end_of_members + 512]))  # all, no or one end block
    suffixes = [b"", bytes(700)] if keep == end_of_members else [b"", b"trailing junk", bytes(700)]
    data = data[:keep] + draw(st.sampled_from(suffixes))  # junk only after a zero block
    return fmt, members, global_xattrs, Archive(data)


def read_all(data: bytes, steps: list[int], block_size: int) -> tuple[list[TarMember], list[bytes], bytes]:
    reader = TarReader(Chunked(data, steps))
    members, datas, parts = [], [], []
    for member in reader:
        raw = b"".join(member.iter_raw(block_size))
        members.append(member)
        datas.append(raw)
        parts += [member.header, raw, member.padding]
    parts.append(b"".join(reader.iter_tail(block_size)))
    assert reader.offset == len(data)
    assert b"".join(parts) == data
    return members, datas, parts[-1]


def expected_entry(spec: Spec, global_xattrs: dict[str, bytes]) -> Entry:
    info = spec.info
    etype = TYPES[info.type]
    if spec.mtime_text is not None:
        mtime_ns = int((Decimal(spec.mtime_text) * 10**9).to_integral_value(ROUND_DOWN))
    else:
        mtime_ns = int(info.mtime) * 10**9
    link = info.linkname if etype == SYMLINK else normalize_path(info.linkname) if etype == HARDLINK else ""
    return Entry(path=normalize_path(info.name), type=etype, mode=info.mode, uid=info.uid, gid=info.gid,
                 uname=info.uname, gname=info.gname, mtime_ns=mtime_ns, size=len(spec.data), link=link,
                 rdev=(info.devmajor, info.devminor) if etype in (CHARDEV, BLOCKDEV) else None,
                 xattrs={**global_xattrs, **spec.xattrs})


@settings(max_examples=300 * SCALE, deadline=None, suppress_health_check=SLOW_OK)
@given(archives(), st.lists(st.integers(1, 5000), min_size=1, max_size=5), st.integers(1, 4096))
def test_tarfile_archives_round_trip(archive: tuple[int, list[Spec], dict[str, bytes], bytes], steps: list[int],
                                     block_size: int) -> None:
    fmt, specs_, global_xattrs, data = archive
    members, datas, _ = read_all(data, steps, block_size)
    infos = []
    if specs_:  # tarfile refuses archives without members
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:", encoding="utf-8", errors="surrogateescape") as tar:
            infos = tar.getmembers()
    assert len(members) == len(infos) <= len(specs_)
    for member, raw, spec, info in zip(members, datas, specs_, infos):
        entry = member.entry
        expected = expected_entry(spec, global_xattrs)
        if fmt == PAX:
            entry_times = (entry.atime_ns, entry.ctime_ns)
            assert entry_times == (None, None)
        assert entry == expected
        assert raw == spec.data and member.data_prefix == 0
        if (fmt == GNU and spec.info.type == tarfile.AREGTYPE and info.type == tarfile.DIRTYPE
                and not spec.info.name.endswith("/")):
            # CPython's tarfile judges an old-style regular file ('\0') by the header's own
            # name field, which under a GNU long name is the name cut at 100 bytes: cut just
            # after a '/', tarfile calls it a directory. GNU tar (and our reader) go by the
            # whole name: a regular file.
            assert member.typeflag == tarfile.AREGTYPE
            assert len(spec.info.name.encode("utf-8", "surrogateescape")) > tarfile.LENGTH_NAME
        else:
            assert member.typeflag == info.type
        # and what tarfile itself reads back agrees
        assert entry.path == normalize_path(info.name)
        assert (entry.uid, entry.gid, entry.uname, entry.gname, entry.mode) == (
            info.uid, info.gid, info.uname, info.gname, info.mode)


@settings(max_examples=200 * SCALE, deadline=None, suppress_health_check=SLOW_OK)
@given(archives(), st.data())
def test_skipping_data_gives_the_same_entries(archive: tuple[int, list[Spec], dict[str, bytes], bytes],
                                              data_strategy: st.DataObject) -> None:
    _, _, _, data = archive
    full, _, _ = read_all(data, [1 << 20], 1 << 20)
    reader = TarReader(io.BytesIO(data))
    skipped = []
    for member in reader:
        if data_strategy.draw(st.booleans()):
            it = member.iter_raw(7)
            for _ in range(data_strategy.draw(st.integers(0, 3))):
                next(it, None)
        skipped.append(member.entry)
    assert b"".join(reader.iter_tail()) == read_all(data, [1 << 20], 1 << 20)[2]
    assert skipped == [m.entry for m in full]


def parse_or_typed_error(data: bytes, steps: list[int]) -> None:
    """Either the input parses and rebuilds byte for byte, or a TarStreamError is raised."""
    try:
        read_all(data, steps, 1 << 20)
    except TarStreamError as error:
        message = str(error)
        assert message and "\n" not in message
        event(type(error).__name__)
    else:
        event("parsed")


@settings(max_examples=300 * SCALE, deadline=None, suppress_health_check=SLOW_OK)
@given(archives(), st.data(), st.lists(st.integers(1, 3000), min_size=1, max_size=3))
def test_cut_or_damaged_archives_raise_only_typed_errors(archive: tuple[int, list[Spec], dict[str, bytes], bytes],
                                                         data_strategy: st.DataObject, steps: list[int]) -> None:
    _, _, _, data = archive
    cut = data_strategy.draw(st.integers(0, len(data)))
    parse_or_typed_error(data[:cut], steps)
    if data:
        damaged = bytearray(data)
        for _ in range(data_strategy.draw(st.integers(1, 4))):
            position = data_strategy.draw(st.integers(0, len(data) - 1))
            damaged[position] = data_strategy.draw(st.integers(0, 255))
        if data_strategy.draw(st.booleans()):  # keep header checksums valid, so the damage reaches the fields
            for offset in range(0, len(data) - 511, 512):
                if data[offset + 257:offset + 262] == b"ustar":
                    damaged[offset:offset + 512] = _with_checksum(damaged[offset:offset + 512])
        parse_or_typed_error(bytes(damaged), steps)


@settings(max_examples=300 * SCALE, deadline=None)
@given(st.binary(max_size=2000), st.lists(st.integers(1, 3000), min_size=1, max_size=3))
def test_random_bytes_raise_only_typed_errors(data: bytes, steps: list[int]) -> None:
    parse_or_typed_error(data, steps)


def _with_checksum(block: bytearray) -> bytes:
    block[148:156] = b" " * 8
    block[148:156] = b"%06o\0 " % sum(block)
    return bytes(block)


@settings(max_examples=300 * SCALE, deadline=None)
@given(st.binary(min_size=512, max_size=512), st.binary(max_size=2000))
def test_random_headers_with_valid_checksums_raise_only_typed_errors(header: bytes, rest: bytes) -> None:
    parse_or_typed_error(_with_checksum(bytearray(header)), [4096])
    parse_or_typed_error(_with_checksum(bytearray(header)) + rest, [4096])


@settings(max_examples=300 * SCALE, deadline=None)
@given(st.lists(st.tuples(st.text(max_size=12), st.binary(max_size=40)), max_size=6), st.binary(max_size=30),
       st.sampled_from([b"x", b"g", b"L", b"K"]))
def test_random_extension_headers_raise_only_typed_errors(records: list[tuple[str, bytes]], junk: bytes,
                                                          kind: bytes) -> None:
    keys = ["path", "linkpath", "uid", "size", "mtime", "GNU.sparse.map", "GNU.sparse.size", "GNU.sparse.major",
            "GNU.sparse.minor", "GNU.sparse.realsize", "SCHILY.acl.access", "LIBARCHIVE.xattr.x", "GNU.sparse.offset"]
    body = b""
    for index, (key, value) in enumerate(records):
        keyword = (keys[index % len(keys)] if index % 2 == 0 else key).encode("utf-8", "surrogatepass")
        text = b" " + keyword + b"=" + value + b"\n"
        length = len(text) + 1
        while len(str(length)) + len(text) != length:
            length += 1
        body += str(length).encode() + text
    body += junk
    info = tarfile.TarInfo("ext")
    info.type = kind
    info.size = len(body)
    header = info.tobuf(USTAR) + body + bytes(-len(body) % 512)
    member = tarfile.TarInfo("m")
    member.size = 600
    parse_or_typed_error(header + member.tobuf(USTAR) + bytes(1024) + bytes(1024), [512, 100000])


# -- sparse members, in the four layouts


def _pax_header(records: list[tuple[bytes, bytes]]) -> bytes:
    body = b""
    for key, value in records:
        text = b" " + key + b"=" + value + b"\n"
        length = len(text) + 1
        while len(str(length)) + len(text) != length:
            length += 1
        body += str(length).encode() + text
    info = tarfile.TarInfo("PaxHeaders/sp")
    info.type = tarfile.XHDTYPE
    info.size = len(body)
    return info.tobuf(USTAR) + body + bytes(-len(body) % 512)


def sparse_member(layout: str, segments: list[tuple[int, int]], realsize: int, payload: bytes) -> bytes:
    """One sparse member named 'sp' as GNU tar writes it in ``layout``."""
    numbers = [str(n).encode() for seg in segments for n in seg]
    if layout == "oldgnu":
        info = tarfile.TarInfo("sp")
        info.size = len(payload)
        block = bytearray(info.tobuf(GNU))
        block[156:157] = tarfile.GNUTYPE_SPARSE
        for i, (offset, length) in enumerate(segments[:4]):
            block[386 + 24 * i:410 + 24 * i] = b"%011o\0%011o\0" % (offset, length)
        rest = segments[4:]
        block[482] = 1 if rest else 0
        block[483:495] = b"%011o\0" % realsize
        out = _with_checksum(block)
        for start in range(0, len(rest), 21):
            ext = bytearray(512)
            for i, (offset, length) in enumerate(rest[start:start + 21]):
                ext[24 * i:24 * i + 24] = b"%011o\0%011o\0" % (offset, length)
            ext[504] = 1 if start + 21 < len(rest) else 0
            out += bytes(ext)
        return out + payload + bytes(-len(payload) % 512)
    if layout == "0.0":
        records = [(b"GNU.sparse.size", b"%d" % realsize), (b"GNU.sparse.numblocks", b"%d" % len(segments))]
        for offset, length in segments:
            records += [(b"GNU.sparse.offset", b"%d" % offset), (b"GNU.sparse.numbytes", b"%d" % length)]
        stored, name = payload, "sp"
    elif layout == "0.1":
        records = [(b"GNU.sparse.size", b"%d" % realsize), (b"GNU.sparse.numblocks", b"%d" % len(segments)),
                   (b"GNU.sparse.name", b"sp"), (b"GNU.sparse.map", b",".join(numbers))]
        stored, name = payload, "GNUSparseFile.0/sp"
    else:
        records = [(b"GNU.sparse.major", b"1"), (b"GNU.sparse.minor", b"0"), (b"GNU.sparse.name", b"sp"),
                   (b"GNU.sparse.realsize", b"%d" % realsize)]
        text = b"%d\n" % len(segments) + b"".join(n + b"\n" for n in numbers)
        stored, name = text + bytes(-len(text) % 512) + payload, "GNUSparseFile.0/sp"
    info = tarfile.TarInfo(name)
    info.size = len(stored)
    return _pax_header(records) + info.tobuf(USTAR) + stored + bytes(-len(stored) % 512)


@st.composite
def sparse_files(draw: st.DrawFn) -> tuple[str, list[tuple[int, int]], int, bytes]:
    layout = draw(st.sampled_from(["oldgnu", "0.0", "0.1", "1.0"]))
    pieces = draw(st.lists(st.tuples(st.integers(0, 5000), st.integers(0, 300)), max_size=60))
    segments, position = [], 0
    for gap, length in pieces:
        segments.append((position + gap, length))
        position += gap + length
    realsize = position + draw(st.integers(0, 3000))
    if not segments or draw(st.booleans()):
        segments.append((realsize, 0))  # GNU tar ends every map so (tarfile needs a non-empty 0.1 map)
    payload = draw(st.binary(min_size=sum(n for _, n in segments), max_size=sum(n for _, n in segments)))
    return layout, segments, realsize, payload


@settings(max_examples=300 * SCALE, deadline=None, suppress_health_check=SLOW_OK)
@given(sparse_files(), st.lists(st.integers(1, 3000), min_size=1, max_size=3))
def test_sparse_members_round_trip(sparse: tuple[str, list[tuple[int, int]], int, bytes], steps: list[int]) -> None:
    layout, segments, realsize, payload = sparse
    data = sparse_member(layout, segments, realsize, payload) + bytes(1024)
    members, datas, _ = read_all(data, steps, 1000)
    (member,) = members
    entry = member.entry
    assert (entry.path, entry.type, entry.size) == ("sp", FILE, realsize)
    assert entry.sparse == [seg for seg in segments if seg[1]]
    assert datas[0][member.data_prefix:] == payload and member.content_size == len(payload)
    apparent = bytearray(realsize)
    position = 0
    for offset, length in entry.sparse:
        apparent[offset:offset + length] = payload[position:position + length]
        position += length
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:  # tarfile rebuilds sparse files too
        info = tar.getmembers()[0]
        assert info.name == "sp" and info.size == realsize
        extracted = tar.extractfile(info)
        assert extracted is not None and extracted.read() == bytes(apparent)


@settings(max_examples=300 * SCALE, deadline=None, suppress_health_check=SLOW_OK)
@given(sparse_files(), st.data())
def test_damaged_sparse_members_raise_only_typed_errors(sparse: tuple[str, list[tuple[int, int]], int, bytes],
                                                        data_strategy: st.DataObject) -> None:
    payload = sparse[3]
    original = sparse_member(*sparse) + bytes(1024)
    headers = [off for off in range(0, len(original), 512) if original[off + 257:off + 262] == b"ustar"]
    metadata_end = len(original) - 1024 - len(payload) - (-len(payload) % 512)  # headers, records, 1.0 map
    data = bytearray(original)
    for _ in range(data_strategy.draw(st.integers(1, 3))):
        position = data_strategy.draw(st.integers(0, metadata_end - 1))
        data[position] = data_strategy.draw(st.sampled_from([0, 0x20, 0x30, 0x31, 0x37, 0x39, 0x0A, 0x2C, 0x80, 0xFF]))
    if data_strategy.draw(st.booleans()):  # keep the checksums valid, so the damage reaches the fields
        for offset in headers:
            data[offset:offset + 512] = _with_checksum(data[offset:offset + 512])
    parse_or_typed_error(bytes(data), [4096])
