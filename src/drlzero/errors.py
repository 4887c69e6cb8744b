"""User-facing errors.

A :class:`UserError` is a mistake the user can fix (an unknown preset, a bad value, a missing
checkpoint). The CLI prints its one-line message and exits with code 2, without a traceback.
Everything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class UserError(Exception):
    """An error caused by user input; its message names the problem and the fix."""


class ConfigError(UserError):
    """An invalid configuration key or value."""


class CheckpointError(UserError):
    """A missing, corrupt or incompatible checkpoint."""
