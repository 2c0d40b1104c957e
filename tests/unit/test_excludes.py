"""Exclude patterns of directory backups (dedupe.sources.excludes)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dedupe.sources.excludes import (
    CACHEDIR_SIGNATURE,
    BadExclude,
    compile_pattern,
    is_cache_dir,
    path_filter,
    read_exclude_file,
)


def matches(pattern: str, path: str) -> bool:
    return compile_pattern(pattern).fullmatch(path) is not None


@pytest.mark.parametrize("pattern,path,expected", [
    ("*.tmp", "a.tmp", True),
    ("*.tmp", "var/x/a.tmp", True),
    ("*.tmp", "a.tmp/inside", False),  # the directory itself matches; its contents are never visited
    ("*.tmp", "a.tmpx", False),
    ("cache", "home/u/cache", True),
    ("cache", "home/u/mycache", False),
    ("cache/tmp", "x/cache/tmp", True),
    ("cache/tmp", "x/cache/y/tmp", False),
    ("/var/cache", "var/cache", True),
    ("/var/cache", "srv/var/cache", False),
    ("/var/cache/", "var/cache", True),
    ("/home/*/.cache", "home/ann/.cache", True),
    ("/home/*/.cache", "home/ann/x/.cache", False),
    ("/home/**/.cache", "home/ann/x/.cache", True),
    ("/home/**/.cache", "home/.cache", True),
    ("/srv/**", "srv/a/b", True),
    ("/srv/**", "srv", False),
    ("?.log", "a.log", True),
    ("?.log", "ab.log", False),
    ("[ab].log", "b.log", True),
    ("[!ab].log", "b.log", False),
    ("[!ab].log", "c.log", True),
    ("a.b", "axb", False),  # regular-expression characters are literal
    ("(x)+", "(x)+", True),
])
def test_pattern_semantics(pattern: str, path: str, expected: bool) -> None:
    assert matches(pattern, path) is expected


@pytest.mark.parametrize("pattern", ["", "/", "//", "[abc"])
def test_patterns_that_cannot_be_used(pattern: str) -> None:
    with pytest.raises(BadExclude) as e:
        compile_pattern(pattern)
    assert repr(pattern) in str(e.value) and e.value.exit_code == 2


name = st.text(st.characters(blacklist_characters="/\0*?[]\\", blacklist_categories=("Cs",)), min_size=1,
               max_size=8).filter(lambda s: s not in (".", ".."))


@given(st.lists(name, min_size=1, max_size=5), st.lists(name, min_size=1, max_size=5))
def test_a_literal_path_excludes_itself_and_its_copies_deeper_down(parts: list[str], above: list[str]) -> None:
    path = "/".join(parts)
    assert matches(path, path) and matches("/" + path, path)
    assert matches(path, "/".join(above + parts))  # unanchored: at any depth
    deeper = "/".join(above + parts)
    assert matches("/" + path, deeper) is (deeper == path)  # anchored: only at the root


def test_path_filter_joins_patterns_and_is_none_without_any() -> None:
    assert path_filter([]) is None
    f = path_filter(["*.o", "/build"])
    assert f is not None and f("src/a.o") and f("build") and not f("src/build/x.c") and not f("a.c")


def test_exclude_file_skips_blanks_and_comments(tmp_path: Path) -> None:
    f = tmp_path / "excludes"
    f.write_text("# caches\n*.tmp\n\n   \n  /var/cache  \n#/not/this\n")
    assert read_exclude_file(f) == ["*.tmp", "/var/cache"]
    with pytest.raises(BadExclude) as e:
        read_exclude_file(tmp_path / "missing")
    assert "missing" in str(e.value)


def test_cache_dirs_need_the_signature(tmp_path: Path) -> None:
    def fd_of(d: Path) -> int:
        return os.open(d, os.O_RDONLY | os.O_DIRECTORY)

    for tag, expected in ((CACHEDIR_SIGNATURE + b"\n# made by a tool\n", True), (b"Signature: nope", False),
                          (None, False)):
        d = tmp_path / f"d{expected}{tag is None}"
        d.mkdir()
        if tag is not None:
            (d / "CACHEDIR.TAG").write_bytes(tag)
        fd = fd_of(d)
        try:
            assert is_cache_dir(fd) is expected
        finally:
            os.close(fd)


def test_repeated_double_stars_are_one() -> None:
    """``**/**`` is ``**``: a pattern of many would otherwise backtrack polynomially on
    every deep path that does not match it (paths come from the tree being backed up)."""
    many = compile_pattern("/" + "/".join(["**"] * 12) + "/x")
    assert many.pattern == compile_pattern("/**/x").pattern
    assert compile_pattern("**/**/x").pattern == compile_pattern("**/x").pattern == compile_pattern("/**/x").pattern
    deep = "/".join(["a"] * 300)
    assert many.fullmatch(deep + "/x") and many.fullmatch("x") and not many.fullmatch(deep + "/y")
