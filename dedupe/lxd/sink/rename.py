"""Renaming an instance inside its backup tarball, while it streams.

Under a new name (``--as``) or in another project, the ``name:``/``project:`` lines of
the container and its volume in ``backup/index.yaml`` and in every ``backup.yaml`` (the
instance's and its snapshots') are rewritten textually (tar header size and checksum
fixed), so the ``backup.yaml`` LXD stores names the new instance and ``lxd recover``
accepts it (docs/lxd.md section 2.3).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Iterator
from typing import Final

from dedupe.entries import FILE
from dedupe.lxd.errors import LXDRestoreError
from dedupe.sources.tarstream import TarReader

MAX_REWRITE: Final = 16 << 20  # a backup.yaml larger than this is not LXD's

YamlChanges = dict[tuple[str, ...], str]  # key path -> new scalar value
_KEY_LINE: Final = re.compile(r"^( *)([^\s#:'\"-][^:]*):(?: (.*))?$")
_PLAIN: Final = re.compile(r"^[A-Za-z][A-Za-z0-9-]*$")
_YAML_WORDS: Final = frozenset({"y", "n", "yes", "no", "true", "false", "on", "off", "null"})
_SNAPSHOT_YAML: Final = re.compile(r"^backup/snapshots/[^/]+/backup\.yaml$")


def yaml_scalar(value: str) -> str:
    """``value`` as a YAML scalar: plain when it cannot be read as anything else."""
    if _PLAIN.match(value) and value.lower() not in _YAML_WORDS:
        return value
    return json.dumps(value)


def rewrite_yaml(text: bytes, changes: YamlChanges) -> bytes:
    """Replace the scalar value of the mapping keys at the given key paths, line by
    line, leaving every other byte as LXD wrote it (a YAML library would rewrite its
    timestamps in a form LXD refuses: docs/lxd.md section 2.3). Keys inside list items never
    match (their path holds a ``-``)."""
    out: list[bytes] = []
    stack: list[tuple[int, str]] = []  # (indent, key or "-") of the enclosing lines
    for raw in text.split(b"\n"):
        line = raw.decode("utf-8", "surrogateescape")
        body = line.lstrip(" ")
        indent = len(line) - len(body)
        if body.startswith("- ") or body == "-":  # a list item: may sit at its key's indent
            while stack and (stack[-1][0] > indent or stack[-1] == (indent, "-")):
                stack.pop()
            stack.append((indent, "-"))
        elif body and not body.startswith("#"):
            while stack and stack[-1][0] >= indent:
                stack.pop()
            m = _KEY_LINE.match(line)
            if m is not None:
                path = (*(k for _, k in stack), m.group(2))
                stack.append((indent, m.group(2)))
                if path in changes and m.group(3) is not None:
                    raw = f"{m.group(1)}{m.group(2)}: {yaml_scalar(changes[path])}".encode("utf-8", "surrogateescape")
        out.append(raw)
    return b"\n".join(out)


def yaml_changes(path: str, name: str | None, project: str | None) -> YamlChanges | None:
    """What to change in the tar member ``path`` of an instance backup so that it names
    instance ``name`` in ``project`` (either None: unchanged); None for other members."""
    fields = {k: v for k, v in (("name", name), ("project", project)) if v is not None}
    if not fields:
        return None
    if path == "backup/index.yaml":  # the instance and volume records below config:, and name:
        changes: YamlChanges = {
            ("config", section, k): v for section in ("container", "volume") for k, v in fields.items()
        }
        if name is not None:
            changes[("name",)] = name
        return changes
    if path == "backup/container/backup.yaml" or _SNAPSHOT_YAML.match(path):
        return {(section, k): v for section in ("container", "volume") for k, v in fields.items()}
    return None


class PieceReader:
    """A readable over an iterator of byte pieces."""

    def __init__(self, pieces: Iterable[bytes | memoryview]) -> None:
        self._it = iter(pieces)
        self._buf = b""
        self._pos = 0

    def read(self, n: int = -1, /) -> bytes:
        while self._pos >= len(self._buf):
            piece = next(self._it, None)
            if piece is None:
                return b""
            self._buf, self._pos = bytes(piece), 0
        end = len(self._buf) if n < 0 else self._pos + n
        out = self._buf[self._pos : end]
        self._pos += len(out)
        return out


def _resized_header(header: bytes, size: int, path: str) -> bytes:
    """The member's header blocks with a new size field and checksum in the ustar block
    (the last one). Extended headers before it (a direct backup's PAX tar has one per
    member, for nanosecond times) are kept, unless they hold a size of their own."""
    extended, header = header[:-512], header[-512:]
    if len(header) != 512 or b" size=" in extended or b" GNU.sparse" in extended:
        raise LXDRestoreError(f"cannot rewrite {path} in the backup tarball: its extended headers give its size")
    block = bytearray(header)
    block[124:136] = b"%011o\0" % size
    block[148:156] = b" " * 8
    block[148:156] = b"%06o\0 " % sum(block)
    return extended + bytes(block)


def rewrite_tar_members(
    pieces: Iterable[bytes | memoryview], changes_for: Callable[[str], YamlChanges | None]
) -> Iterator[bytes | memoryview]:
    """Pass a tar stream through, rewriting the YAML of the members ``changes_for``
    names (see ``rewrite_yaml``); only those small members are held in memory."""
    reader = TarReader(PieceReader(pieces))
    for member in reader:
        changes = changes_for(member.entry.path) if member.entry.type == FILE else None
        if not changes or member.data_size > MAX_REWRITE:
            yield member.header
            if member.data_size:
                yield from member.iter_raw()
            yield member.padding
            continue
        new = rewrite_yaml(b"".join(member.iter_raw()), changes)
        yield _resized_header(member.header, len(new), member.entry.path)
        yield new
        yield bytes(-len(new) % 512)
    yield from reader.iter_tail()
