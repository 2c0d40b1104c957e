"""Errors raised while decoding stored bytes (FORMAT.md section 1.3).

Each carries an ``exit_code`` so the command line can report it without knowing
this package's internals; the numbers follow ``dedupe.errors``' table.
"""

from __future__ import annotations


class FormatError(Exception):
    """Stored bytes do not decode: damaged, truncated or not ours."""

    exit_code: int = 20


class UnsupportedVersionError(FormatError):
    """An object written by a newer version of the format."""

    exit_code = 12


class IntegrityError(FormatError):
    """Bytes decode but do not match the id or hash that names them."""

    exit_code = 21
