"""The project's own error types.

Every error a user can cause (bad path, bad checkpoint, bad config) is raised as a subclass of
:class:`MlacError` with a message that names the problem and how to fix it. The CLI prints these
without a traceback; the service maps them to 4xx responses through :attr:`MlacError.code`.
"""

from __future__ import annotations


class MlacError(Exception):
    """Base class of all user-facing errors; ``code`` is a stable machine-readable identifier."""

    code: str = "mlac_error"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code


class ConfigError(MlacError):
    """A configuration value is missing, out of range or inconsistent."""

    code = "invalid_config"


class DataError(MlacError):
    """A dataset is missing, unreadable, or lacks the columns/labels a task needs."""

    code = "invalid_dataset"


class CheckpointError(MlacError):
    """A model checkpoint is missing, unsafe (pickle), malformed or does not match its config."""

    code = "invalid_checkpoint"


class StoppedError(MlacError):
    """A long-running computation was asked to stop through its stop flag."""

    code = "stopped"
