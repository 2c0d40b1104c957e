"""Where the passphrase of an encrypted repository comes from.

In order: ``--passphrase-file`` and ``--passphrase-command`` when given on the command
line (a command-line option always wins over the environment), ``$DEDUPE_PASSPHRASE``,
the file named by ``$DEDUPE_PASSPHRASE_FILE``, the output of ``$DEDUPE_PASSPHRASE_COMMAND``
(run by the shell), then a prompt when there is a terminal.

A command that opens a second repository (``copy --to``, ``init --copy-params-from``)
reads that one's passphrase the same way from ``$DEDUPE_TO_PASSPHRASE[_FILE|_COMMAND]``
or ``$DEDUPE_FROM_PASSPHRASE[_FILE|_COMMAND]`` (as restic's ``--from-password-file``),
after ``--to-passphrase-file``/``--from-passphrase-file`` (or ``-command``) when given, and
falls back to the first repository's passphrase when none of those is set.
"""

from __future__ import annotations

import getpass
import os
import sys
from dataclasses import dataclass
from typing import Callable

from dedupe.errors import DedupeError

PassphraseSource = Callable[[], bytes]


@dataclass(frozen=True)
class ExplicitPassphrase:
    """Where the command line says the passphrase is: a file or a command (``None``: not
    given). These come before every environment variable."""

    file: str | None = None
    command: str | None = None


class PassphraseUnavailable(DedupeError):
    exit_code = 15


def _strip_newline(data: bytes) -> bytes:
    return data[:-1] if data.endswith(b"\n") else data


def from_environment(prompt: bool = True, confirm: bool = False,
                     explicit: ExplicitPassphrase = ExplicitPassphrase()) -> bytes:
    """The passphrase of the repository the command is about: ``explicit`` (the command
    line), else ``$DEDUPE_PASSPHRASE...``, else a prompt."""
    found = _from_explicit(explicit)
    if found is None:
        found = _from_variables("DEDUPE_PASSPHRASE")
    if found is not None:
        return found
    if prompt and sys.stdin.isatty():
        return _prompt("dedupe passphrase: ", confirm)
    raise PassphraseUnavailable("the repository is encrypted and no passphrase was given: set DEDUPE_PASSPHRASE, "
                                "--passphrase-file or --passphrase-command")


def for_this(explicit: ExplicitPassphrase) -> PassphraseSource:
    """``from_environment`` with the command line's ``explicit`` sources first."""
    return lambda: from_environment(explicit=explicit)


def for_other(prefix: str, location: str, explicit: ExplicitPassphrase = ExplicitPassphrase()) -> PassphraseSource:
    """The passphrase source of a second repository: ``explicit`` (its command-line
    options), ``$<prefix>``, ``$<prefix>_FILE``, ``$<prefix>_COMMAND`` (``prefix`` is
    ``DEDUPE_TO_PASSPHRASE`` or ``DEDUPE_FROM_PASSPHRASE``), else the first repository's
    variables, else a prompt naming ``location``."""
    def source() -> bytes:
        found = _from_explicit(explicit)
        if found is not None:
            return found
        for variable in (prefix, "DEDUPE_PASSPHRASE"):
            found = _from_variables(variable)
            if found is not None:
                return found
        if sys.stdin.isatty():
            return _prompt(f"passphrase of {location}: ", confirm=False)
        raise PassphraseUnavailable(f"{location} is encrypted and no passphrase was given for it: set {prefix}, "
                                    f"{prefix}_FILE or {prefix}_COMMAND")
    return source


def _from_explicit(explicit: ExplicitPassphrase) -> bytes | None:
    if explicit.file:
        return _read_file(explicit.file)
    if explicit.command:
        return _run_command(explicit.command)
    return None


def _from_variables(variable: str) -> bytes | None:
    """``$V``, else the file named by ``$V_FILE``, else the output of ``$V_COMMAND``."""
    env = os.environ
    if variable in env:
        return os.fsencode(env[variable])
    return _from_explicit(ExplicitPassphrase(env.get(f"{variable}_FILE"), env.get(f"{variable}_COMMAND")))


def _read_file(path: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return _strip_newline(f.read())
    except OSError as e:
        raise PassphraseUnavailable(f"passphrase file {path}: {e.strerror}") from None


def _run_command(cmd: str) -> bytes:
    import subprocess  # only for --passphrase-command

    p = subprocess.run(cmd, shell=True, capture_output=True)
    if p.returncode != 0:
        raise PassphraseUnavailable(f"passphrase command {cmd!r} exited {p.returncode}")
    return _strip_newline(p.stdout)


def _prompt(text: str, confirm: bool) -> bytes:
    first = getpass.getpass(text).encode()
    if confirm and getpass.getpass("again: ").encode() != first:
        raise PassphraseUnavailable("the passphrases do not match")
    return first
