"""Where the passphrase of an encrypted repository comes from.

In order: ``$DEDUPE_PASSPHRASE``, the file named by ``$DEDUPE_PASSPHRASE_FILE``
(``--passphrase-file``), the output of ``$DEDUPE_PASSPHRASE_COMMAND``
(``--passphrase-command``, run by the shell), then a prompt when there is a terminal.
"""

from __future__ import annotations

import getpass
import os
import subprocess
import sys
from typing import Callable

from dedupe.errors import DedupeError

PassphraseSource = Callable[[], bytes]


class PassphraseUnavailable(DedupeError):
    exit_code = 15


def _strip_newline(data: bytes) -> bytes:
    return data[:-1] if data.endswith(b"\n") else data


def from_environment(prompt: bool = True, confirm: bool = False) -> bytes:
    env = os.environ
    if "DEDUPE_PASSPHRASE" in env:
        return os.fsencode(env["DEDUPE_PASSPHRASE"])
    if env.get("DEDUPE_PASSPHRASE_FILE"):
        path = env["DEDUPE_PASSPHRASE_FILE"]
        try:
            with open(path, "rb") as f:
                return _strip_newline(f.read())
        except OSError as e:
            raise PassphraseUnavailable(f"passphrase file {path}: {e.strerror}") from None
    if env.get("DEDUPE_PASSPHRASE_COMMAND"):
        cmd = env["DEDUPE_PASSPHRASE_COMMAND"]
        p = subprocess.run(cmd, shell=True, capture_output=True)
        if p.returncode != 0:
            raise PassphraseUnavailable(f"passphrase command {cmd!r} exited {p.returncode}")
        return _strip_newline(p.stdout)
    if prompt and sys.stdin.isatty():
        first = getpass.getpass("dedupe passphrase: ").encode()
        if confirm and getpass.getpass("again: ").encode() != first:
            raise PassphraseUnavailable("the passphrases do not match")
        return first
    raise PassphraseUnavailable("the repository is encrypted and no passphrase was given: set DEDUPE_PASSPHRASE, "
                                "--passphrase-file or --passphrase-command")
