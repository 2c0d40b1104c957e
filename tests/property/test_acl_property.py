"""Round trips of dedupe.acl over generated ACLs."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from dedupe import acl

_ids = st.integers(min_value=0, max_value=0xFFFFFFFE)
_perms = st.integers(min_value=0, max_value=7)


@st.composite
def acls(draw: st.DrawFn) -> list[tuple[int, int, int]]:
    users = draw(st.dictionaries(_ids, _perms, max_size=6))
    groups = draw(st.dictionaries(_ids, _perms, max_size=6))
    entries = [(acl.USER_OBJ, draw(_perms), acl.UNDEFINED_ID)]
    entries += [(acl.USER, p, i) for i, p in sorted(users.items())]
    entries.append((acl.GROUP_OBJ, draw(_perms), acl.UNDEFINED_ID))
    entries += [(acl.GROUP, p, i) for i, p in sorted(groups.items())]
    if users or groups or draw(st.booleans()):
        entries.append((acl.MASK, draw(_perms), acl.UNDEFINED_ID))
    entries.append((acl.OTHER, draw(_perms), acl.UNDEFINED_ID))
    return entries


def _pack(entries: list[tuple[int, int, int]]) -> bytes:
    import struct
    return struct.pack("<I", 2) + b"".join(struct.pack("<HHI", *e) for e in entries)


@given(acls())
def test_xattr_text_xattr(entries: list[tuple[int, int, int]]) -> None:
    value = _pack(entries)
    assert acl.text_to_xattr(acl.xattr_to_text(value)) == value


@given(acls(), st.randoms(use_true_random=False), st.sampled_from([",", "\n", " , "]))
def test_text_order_and_separator_do_not_matter(entries: list[tuple[int, int, int]], rnd, sep: str) -> None:
    value = _pack(entries)
    parts = acl.xattr_to_text(value).split(",")
    rnd.shuffle(parts)
    assert acl.text_to_xattr(sep.join(parts) + "\n") == value


@given(st.binary(max_size=64))
def test_arbitrary_bytes_never_crash(data: bytes) -> None:
    try:
        text = acl.xattr_to_text(data)
    except acl.AclError:
        return
    assert isinstance(text, str)


@given(st.text(alphabet="ugmo:rwx-,0123456789\n# ", max_size=60))
def test_arbitrary_text_never_crashes(text: str) -> None:
    try:
        value = acl.text_to_xattr(text)
    except acl.AclError:
        return
    assert acl.text_to_xattr(acl.xattr_to_text(value)) == value
