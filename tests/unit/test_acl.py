"""dedupe.acl against the kernel's xattr values as setfacl writes them and getfacl reads them."""

from __future__ import annotations

import os
import struct
import subprocess
from pathlib import Path

import pytest

from dedupe import acl
from dedupe.acl import AclError, text_to_xattr, xattr_to_text

pytestmark = pytest.mark.needs_tools("setfacl", "getfacl")


def _getfacl(path: Path, default: bool = False) -> list[str]:
    args = ["getfacl", "-n", "-c", "-E"] + (["-d"] if default else []) + [str(path)]
    out = subprocess.run(args, check=True, capture_output=True, text=True).stdout
    return [line for line in out.splitlines() if line]


def test_setfacl_value_to_text_and_back(tmp_path: Path) -> None:
    f = tmp_path / "f"
    f.write_bytes(b"")
    subprocess.run(["setfacl", "-m", "u:1000:r,g:2000:rw,u:65534:x", str(f)], check=True)
    value = os.getxattr(f, acl.ACCESS_XATTR)
    text = xattr_to_text(value)
    assert text == "user::rw-,user:1000:r--,user:65534:--x,group::r--,group:2000:rw-,mask::rwx,other::r--"
    assert text.split(",") == _getfacl(f)
    assert text_to_xattr(text) == value


def test_default_acl_on_directory(tmp_path: Path) -> None:
    d = tmp_path / "d"
    d.mkdir()
    subprocess.run(["setfacl", "-d", "-m", "u:1000:rwx,g:123456:r,o::-", str(d)], check=True)
    value = os.getxattr(d, acl.DEFAULT_XATTR)
    text = xattr_to_text(value)
    assert text.split(",") == _getfacl(d, default=True)
    assert text_to_xattr(text) == value


def test_text_written_by_us_is_accepted_by_the_kernel_and_getfacl(tmp_path: Path) -> None:
    f = tmp_path / "f"
    f.write_bytes(b"")
    text = "user::rwx,user:4000000000:r-x,group::---,group:7:-w-,mask::rwx,other::--x"
    os.setxattr(f, acl.ACCESS_XATTR, text_to_xattr(text))
    assert _getfacl(f) == text.split(",")


def test_gnu_tar_text_form_with_names_newlines_and_comments() -> None:
    # what GNU tar 1.34 writes: one entry a line, names, a trailing newline
    text = "user::rw-\nuser:root:r--\t#effective:r--\ngroup::r--\ngroup:root:rw-\nmask::r--\nother::r--\n"
    assert xattr_to_text(text_to_xattr(text)) == "user::rw-,user:0:r--,group::r--,group:0:rw-,mask::r--,other::r--"


def test_abbreviations_star_ids_default_prefix_and_order() -> None:
    text = "o::r, m::rwx, g:5:rw, u::rw, g::r, u:lisa:r:1001, default:u:7:x"
    assert xattr_to_text(text_to_xattr(text)) == (
        "user::rw-,user:7:--x,user:1001:r--,group::r--,group:5:rw-,mask::rwx,other::r--")


def test_binary_layout() -> None:
    value = text_to_xattr("user::rw-,group::r--,other::---")
    assert value == struct.pack("<IHHIHHIHHI", 2, 1, 6, 0xFFFFFFFF, 4, 4, 0xFFFFFFFF, 0x20, 0, 0xFFFFFFFF)
    assert acl.is_minimal(value)
    assert not acl.is_minimal(text_to_xattr("user::rw-,user:1:r--,group::r--,mask::r--,other::---"))
    assert text_to_xattr("") == struct.pack("<I", 2)
    assert xattr_to_text(struct.pack("<I", 2)) == ""


@pytest.mark.parametrize("text", [
    "user::rw-,group::r--",                       # no other::
    "user::rw-,user:1:r--,group::r--,other::r--",  # named entry, no mask
    "user::rw-,user::r--,group::r--,other::r--",   # duplicate
    "user::rwz,group::r--,other::r--",             # bad perms
    "user::rrw,group::r--,other::r--",
    "wheel::rw-,group::r--,other::r--",            # bad tag
    "user:1:2:3:4,group::r--,other::r--",
    "mask:3:rw-,user::rw-,group::r--,other::r--",  # qualifier on mask
    "user:no-such-user-here:rw-,user::rw-,group::r--,mask::rw-,other::r--",
    "user:4294967295:rw-,user::rw-,group::r--,mask::rw-,other::r--",
    "user",
])
def test_malformed_text(text: str) -> None:
    with pytest.raises(AclError) as info:
        text_to_xattr(text)
    assert 50 <= info.value.exit_code <= 59


@pytest.mark.parametrize("value", [
    b"",
    b"\x02\x00\x00",
    struct.pack("<I", 1) + struct.pack("<HHI", 1, 6, 0xFFFFFFFF),
    struct.pack("<I", 2) + struct.pack("<HHI", 1, 6, 0xFFFFFFFF)[:7],
    struct.pack("<I", 2) + struct.pack("<HHI", 0x40, 6, 0xFFFFFFFF),
    struct.pack("<I", 2) + struct.pack("<HHI", 1, 8, 0xFFFFFFFF),
])
def test_malformed_xattr(value: bytes) -> None:
    with pytest.raises(AclError):
        xattr_to_text(value)
