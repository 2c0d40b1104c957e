"""What a directory backup leaves out: ``--exclude`` patterns and cache directories.

Patterns match paths relative to the backup's root, '/'-separated, as restic's and
borg's shell-style patterns do:

- ``*`` matches any run of characters within one path component, ``?`` one
  character, ``[...]`` one of a set (``[!...]`` one not in it);
- a component ``**`` matches any number of whole components, none included;
- a pattern starting with ``/`` is anchored at the root (``/var/cache``); any other
  matches the end of a path at a component boundary (``*.tmp`` leaves out every
  ``.tmp`` file, ``cache/tmp`` every ``tmp`` inside a ``cache`` directory);
- a trailing ``/`` is ignored; an excluded directory is not entered at all.

``--exclude-from FILE`` reads one pattern a line; blank lines and lines starting with
``#`` are skipped. ``--exclude-caches`` leaves out the contents of every directory
holding a ``CACHEDIR.TAG`` with the standard signature (https://bford.info/cachedir/);
the directory itself is kept, empty.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable
from pathlib import Path

from dedupe.errors import DedupeError

CACHEDIR_TAG = "CACHEDIR.TAG"
CACHEDIR_SIGNATURE = b"Signature: 8a477f597d28d172789f06886806bc55"


class BadExclude(DedupeError):
    """An exclude pattern that cannot be used, or an exclude file that cannot be read."""

    exit_code = 2


def _component(pattern: str, whole: str) -> str:
    """The regular expression of one path component of a pattern."""
    out, i = [], 0
    while i < len(pattern):
        c = pattern[i]
        if c == "*":
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[":
            end = pattern.find("]", i + 2 if pattern[i + 1:i + 2] in ("!", "]") else i + 1)
            if end < 0:
                raise BadExclude(f"exclude pattern {whole!r}: '[' without a closing ']'")
            body = pattern[i + 1:end]
            if body.startswith("!"):
                body = "^" + body[1:]
            out.append("[" + body.replace("\\", "\\\\").replace("/", "") + "]")
            i = end
        else:
            out.append(re.escape(c))
        i += 1
    return "".join(out)


def compile_pattern(pattern: str) -> re.Pattern[str]:
    """One pattern as a regular expression over a relative path (see the module doc)."""
    anchored = pattern.startswith("/")
    parts: list[str] = []
    for p in pattern.strip("/").split("/"):
        if p and not (p == "**" and parts and parts[-1] == "**"):  # "**/**" is "**" (and no backtracking)
            parts.append(p)
    if not parts:
        raise BadExclude(f"exclude pattern {pattern!r} matches nothing (or everything): give a name")
    body = ""
    for n, part in enumerate(parts):
        last = n == len(parts) - 1
        if part == "**":
            body += ".*" if last else "(?:[^/]+/)*"
        else:
            body += _component(part, pattern) + ("" if last else "/")
    return re.compile(("" if anchored or parts[0] == "**" else "(?:.*/)?") + body, re.DOTALL)


def read_exclude_file(path: Path) -> list[str]:
    try:
        text = path.read_bytes().decode("utf-8", "surrogateescape")
    except OSError as e:
        raise BadExclude(f"exclude file {path}: {e.strerror}") from None
    return [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def path_filter(patterns: Iterable[str]) -> Callable[[str], bool] | None:
    """Whether a relative path is excluded; None when nothing is."""
    compiled = [compile_pattern(p) for p in patterns]
    if not compiled:
        return None
    joined = re.compile("|".join(f"(?:{c.pattern})" for c in compiled), re.DOTALL)
    return lambda path: joined.fullmatch(path) is not None


def is_cache_dir(dir_fd: int) -> bool:
    """Whether the open directory holds a ``CACHEDIR.TAG`` that starts with the signature."""
    try:
        fd = os.open(CACHEDIR_TAG, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK, dir_fd=dir_fd)
    except OSError:
        return False
    try:
        return os.read(fd, len(CACHEDIR_SIGNATURE)) == CACHEDIR_SIGNATURE
    except OSError:
        return False
    finally:
        os.close(fd)
