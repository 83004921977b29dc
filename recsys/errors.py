"""Errors that the CLI turns into one clear message and a non-zero exit.

Everything a user can cause (bad data, bad config, unreachable services) raises a
subclass of ``RecsysError``; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class RecsysError(Exception):
    """A problem the user can fix; the message says what and where."""


class DataError(RecsysError):
    """Input data is missing, corrupt or malformed."""

    def __init__(self, message: str, *, source: str | None = None, line: int | None = None):
        where = source or ""
        if line is not None:
            where = f"{where} line {line}"
        super().__init__(f"{where}: {message}" if where else message)
        self.source = source
        self.line = line


class DownloadError(RecsysError):
    """The data source could not be fetched."""


class DatabaseUnavailable(RecsysError):
    """The database cannot be reached."""


class ConfigError(RecsysError):
    """A configuration value is invalid."""
