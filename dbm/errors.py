"""The errors a user is expected to meet, one class each; the command line prints any
``UserError`` as one line on stderr and exits with status 2 (``DivergenceError``: status 3).

Nothing here imports the rest of the package, so every layer can raise them.
"""
from __future__ import annotations

__all__ = ["UserError", "ConfigError", "DataError", "CheckpointError", "RunLockedError",
           "DivergenceError", "EXIT_USER_ERROR", "EXIT_DIVERGED"]

EXIT_USER_ERROR = 2
EXIT_DIVERGED = 3


class UserError(Exception):
    """An expected error whose message says what to change; shown without a traceback."""


class ConfigError(UserError, ValueError):
    """A setting is out of range, of the wrong kind, or does not fit the data."""


class DataError(UserError, RuntimeError):
    """A data file is missing, truncated or corrupt (the message says which and where)."""


class CheckpointError(UserError, RuntimeError):
    """A run folder cannot be resumed or written: no checkpoint, other settings, a corrupt or
    unsafe file, a legacy layout, a folder that is not writable."""


class RunLockedError(UserError, RuntimeError):
    """Another live process is writing the same run folder."""


class DivergenceError(RuntimeError):
    """Parameters, the loss or the sampler's states became NaN/inf; the last good checkpoint is kept."""
