"""What a tar stream that cannot be read faithfully raises: a ``TarStreamError`` subclass
naming the member and the byte offset."""

from __future__ import annotations

from dedupe.errors import DedupeError


class TarStreamError(DedupeError):
    """The tar input cannot be parsed (the base of this module's errors)."""

    exit_code = 40


class NotATarError(TarStreamError):
    """The input does not start with a tar header."""

    exit_code = 40


class BadChecksumError(TarStreamError):
    """A header block's checksum does not match its bytes."""

    exit_code = 41


class BadFieldError(TarStreamError):
    """A numeric header field or pax value is not a number or out of range."""

    exit_code = 42


class ImpossibleSizeError(TarStreamError):
    """A member's size is negative or beyond what any stream can hold."""

    exit_code = 43


class TruncatedTarError(TarStreamError):
    """The stream ends inside a header or inside a member's data."""

    exit_code = 44


class BadPaxRecordError(TarStreamError):
    """A pax extended header holds a malformed record or value."""

    exit_code = 45


class BadSparseMapError(TarStreamError):
    """A sparse member's map is malformed or disagrees with its data size."""

    exit_code = 46


class ExtensionTooLargeError(TarStreamError):
    """A pax header, GNU long name/link or sparse map exceeds the memory limit."""

    exit_code = 47


class DanglingExtensionError(TarStreamError):
    """An extended header (pax ``x``, GNU ``L``/``K``) has no member after it."""

    exit_code = 48
