"""One exception hierarchy for the whole package.

Every class derives from :class:`ReconcilerError` and, where a caller would naturally catch
a builtin, from that builtin too (``except FileNotFoundError`` keeps working).  Errors are
either *retriable* (:class:`TransientError`: a flaky network, a 503, a busy lock) or
permanent; retry loops consult :func:`is_retriable` rather than matching classes ad hoc.
"""

from __future__ import annotations

from pathlib import Path


class ReconcilerError(Exception):
    """Root of every error this package raises on purpose."""


class TransientError(ReconcilerError):
    """An error that may go away if the same operation is tried again later."""


def is_retriable(exc: BaseException) -> bool:
    """True when a retry policy may try the failed operation again."""
    return isinstance(exc, TransientError)


# --- configuration and records ---------------------------------------------------------


class SettingsError(ReconcilerError, ValueError):
    """The settings file or environment holds a bad value."""


class InvalidModelConfigException(ReconcilerError, ValueError):
    """A model config dict or object failed validation."""


class UnknownModelException(ReconcilerError, LookupError):
    """No record has the given key (or name)."""


class DuplicateModelException(ReconcilerError, ValueError):
    """A record with that key/path already exists, or a name lookup is ambiguous."""


class StoreFormatError(ReconcilerError, AssertionError):
    """A record-store file is of the wrong kind or lacks the expected schema.

    The seed documents an ``AssertionError`` here, so this class is one too.
    """


class StoreLockedError(TransientError, TimeoutError):
    """The record store stayed busy past its timeout."""


# --- manifests, plans and the lock file ---------------------------------------------------


class ManifestError(ReconcilerError, ValueError):
    """A manifest is malformed or invalid; carries ``file:line:col`` (1-based)."""

    def __init__(self, message: str, file: str | Path | None = None, line: int | None = None,
                 column: int | None = None) -> None:
        self.message = message
        self.file = str(file) if file is not None else None
        self.line = line
        self.column = column
        super().__init__(self.__str__())

    @property
    def location(self) -> str:
        """``file:line:col`` as far as it is known."""
        parts = [self.file or "<manifest>"]
        if self.line is not None:
            parts.append(str(self.line))
            if self.column is not None:
                parts.append(str(self.column))
        return ":".join(parts)

    def __str__(self) -> str:
        return f"{self.location}: {self.message}"


class LockFileError(ReconcilerError, ValueError):
    """The lock file is malformed, or does not match the manifests under ``--locked``."""


class PlanError(ReconcilerError):
    """A plan could not be computed."""


class StalePlanError(PlanError):
    """A saved plan no longer matches the state it was made against."""


class ApplyGuardError(ReconcilerError):
    """A safety guard (``--allow-empty``, ``--max-deletions``, disk space) stopped an apply."""


class InsufficientDiskSpaceError(ApplyGuardError, OSError):
    """The bytes an apply would write do not fit on the models dir's filesystem."""


class ModelsDirLockedError(TransientError, TimeoutError):
    """Another process holds the models dir's apply lock."""


class ModelsDirNotWritableError(ReconcilerError, PermissionError):
    """The models dir cannot be created or written."""


# --- sources, probing, installing -----------------------------------------------------------


class SourceError(ReconcilerError, ValueError):
    """A model source string cannot be parsed or is unusable."""


class SourceNotFoundError(ReconcilerError, FileNotFoundError):
    """A source (local path, repo, revision, file) does not exist."""


class UnsafePathError(ReconcilerError, ValueError):
    """A remote listing or archive names a path that would land outside its folder."""


class InvalidModelError(ReconcilerError, ValueError):
    """A file or folder is not a model this package can identify."""


class InstallError(ReconcilerError):
    """An install, register or delete failed."""


class UnknownJobIDException(ReconcilerError, LookupError):
    """No job has the given id."""


# --- downloads --------------------------------------------------------------------------------


class DownloadError(ReconcilerError):
    """A download failed permanently (404, 401/403, HTML instead of a model, bad digest)."""


class TransientDownloadError(TransientError):
    """A download failed in a way worth retrying (reset, timeout, 5xx, 429)."""


class IntegrityError(DownloadError):
    """Downloaded bytes do not match the expected size or sha256."""


class DiskFullError(DownloadError, OSError):
    """The disk filled up while a download was written (names the bytes needed)."""


class AuthenticationRequiredError(DownloadError, PermissionError):
    """The source needs a token (or a better one)."""


class RemoteFileNotFoundError(DownloadError, FileNotFoundError):
    """The server answered 404/410: the URL names nothing (a typo, a removed file)."""


# --- loading ----------------------------------------------------------------------------------


class LoadError(ReconcilerError):
    """A model could not be loaded."""


class ModelNotFoundException(LoadError, FileNotFoundError):
    """The record exists but its files are not where it says (the seed's name)."""


class NotImplementedException(LoadError, NotImplementedError):
    """No loader is registered for the model's base, type and format (the seed's name)."""


class MissingLoadFilesError(LoadError, FileNotFoundError):
    """A file the loader needs is not on this machine (e.g. a tokenizer for a single-file
    checkpoint); the message says how to provide it.  Never fetched from the network."""


class OptionalDependencyError(ReconcilerError, ImportError):
    """A feature needs the ``[torch]`` extra, which is not installed."""
