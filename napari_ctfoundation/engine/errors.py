"""The project's own exception types.

Every error a user can cause (a bad file, a bad option, a wrong checkpoint)
is raised as a subclass of :class:`CTFoundationError` with a message that
names the thing at fault and the problem, so the CLI can print one line and
the widgets can show one notification.
"""

from __future__ import annotations


class CTFoundationError(Exception):
    """Base class of all errors the product reports to its users."""


class VolumeReadError(CTFoundationError):
    """A file or folder could not be read as a CT volume."""


class VolumeWriteError(CTFoundationError):
    """A volume could not be written (or would overwrite something it must not)."""


class GeometryError(CTFoundationError):
    """Shapes, spacings or affines that do not fit together."""


class ConfigError(CTFoundationError):
    """An invalid option, model name, checkpoint or configuration."""


class OperationCancelled(CTFoundationError):
    """Raised inside long engine work when the caller's cancel check fires."""
