"""The exceptions of ctadata: one class per failure category, rooted in CtaDataError.

Each carries ``exit_code`` (the ``cta-data`` command's exit code for the same failure),
``kind`` (the category's name) and ``hint`` (what to do, or None). ``str(e)`` is the
command's message, with the hint on a second line. No message ever contains a token.

The old client's ``StorageException`` is the base of every storage failure and its
``CertificateError`` is raised by failed certificate uploads, so old ``except`` clauses
still catch what they caught.
"""

from __future__ import annotations

from typing import Optional


class StorageException(Exception):
    """The old client's storage failure: every CtaDataError is one."""


class CtaDataError(StorageException):
    """A failure of a ctadata operation (the base of all ctadata errors)."""

    kind: str = "internal"
    exit_code: int = 1

    def __init__(
        self,
        message: str,
        hint: Optional[str] = None,
        exit_code: Optional[int] = None,
        kind: Optional[str] = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        if exit_code is not None:
            self.exit_code = exit_code
        if kind is not None:
            self.kind = kind

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message}\n  hint: {self.hint}"
        return self.message

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r}, hint={self.hint!r}, exit_code={self.exit_code})"

    def __reduce__(self):
        return (type(self), (self.message, self.hint, self.exit_code, self.kind))


class UsageError(CtaDataError, ValueError):
    """A call that cannot work as given (a bad path, a directory where a file is needed)."""

    kind = "usage"
    exit_code = 2


class ConfigError(CtaDataError):
    """A profile that does not exist or is incomplete, a bad config file."""

    kind = "config"
    exit_code = 3


class AuthenticationError(CtaDataError):
    """No credential, or one the server refused (expired token...): see ``hint``."""

    kind = "auth"
    exit_code = 4


class PermissionDeniedError(CtaDataError, PermissionError):
    """The server (or the local system) refused access to the path."""

    kind = "permission"
    exit_code = 5


class NotFoundError(CtaDataError, FileNotFoundError):
    """The path does not exist (remote or local)."""

    kind = "not_found"
    exit_code = 6


class ConflictError(CtaDataError, FileExistsError):
    """The destination is in the way (exists, or is a directory where a file is expected)."""

    kind = "conflict"
    exit_code = 7


class IntegrityError(CtaDataError):
    """The data arrived damaged or incomplete (size or checksum mismatch); it was discarded."""

    kind = "integrity"
    exit_code = 8


class TransportError(CtaDataError, ConnectionError):
    """The network or TLS failed (after the retries)."""

    kind = "transport"
    exit_code = 9


class ProtocolError(CtaDataError):
    """The server answered something unexpected."""

    kind = "protocol"
    exit_code = 10


class UnsupportedError(CtaDataError, NotImplementedError):
    """This storage (or this version of ctadata) cannot do that."""

    kind = "unsupported"
    exit_code = 11


class LocalIOError(CtaDataError, OSError):
    """A local file could not be read or written."""

    kind = "local_io"
    exit_code = 12


class PartialFailure(CtaDataError):
    """Some files of a recursive transfer failed, the others were transferred."""

    kind = "partial"
    exit_code = 13


class TapeError(CtaDataError):
    """A file is on tape only, staging failed or timed out, or the storage has no tape
    REST API (issue 14)."""

    kind = "tape"
    exit_code = 14


class CertificateError(CtaDataError):
    """A certificate upload failed (the old client's name; ``kind`` says why)."""


_BY_KIND = {
    cls.kind: cls
    for cls in (
        UsageError,
        ConfigError,
        AuthenticationError,
        PermissionDeniedError,
        NotFoundError,
        ConflictError,
        IntegrityError,
        TransportError,
        ProtocolError,
        UnsupportedError,
        LocalIOError,
        PartialFailure,
        TapeError,
    )
}

_CERTIFICATE_CLASSES: dict = {}


def _certificate_class(base: type) -> type:
    """A class that is both ``base`` and CertificateError (cached per base)."""
    cls = _CERTIFICATE_CLASSES.get(base)
    if cls is None:
        cls = type(
            "Certificate" + base.__name__,
            (CertificateError, base),
            {"__doc__": f"A certificate upload's {base.__name__}.", "__module__": __name__},
        )
        _CERTIFICATE_CLASSES[base] = cls
        globals()[cls.__name__] = cls  # so that pickle finds it
    return cls


def _from_native(
    kind: str, exit_code: int, message: str, hint: Optional[str], certificate: bool = False
) -> BaseException:
    """The exception for an engine error (called by ctadata._native)."""
    if kind == "interrupted":
        return KeyboardInterrupt(message)
    cls = _BY_KIND.get(kind, CtaDataError)
    if certificate:
        cls = _certificate_class(cls)
    return cls(message, hint=hint, exit_code=exit_code, kind=kind)


__all__ = [
    "StorageException",
    "CtaDataError",
    "UsageError",
    "ConfigError",
    "AuthenticationError",
    "PermissionDeniedError",
    "NotFoundError",
    "ConflictError",
    "IntegrityError",
    "TransportError",
    "ProtocolError",
    "UnsupportedError",
    "LocalIOError",
    "PartialFailure",
    "CertificateError",
]
