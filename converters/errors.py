"""The vp3d exception tree, shared by every package (it lives here because ``converters`` is the
lowest layer: ``vp3d_engine`` and ``blender_addon`` both import it).

::

    Vp3dError                      root: every error vp3d raises on purpose
    ├── ConfigurationError         bad options or flags, inconsistent settings
    ├── BackendUnavailableError    an optional dependency (extra) is not installed
    ├── CheckpointError            a checkpoint cannot be found, read or trusted
    ├── InputFileError             a user file (BVH, video, keypoints) is missing or malformed
    └── ConversionError            valid input that cannot be turned into the requested output

Each message says what to do about it; the CLI, the HTTP service and the Blender add-on map these
to their own idiom (exit code, HTTP status, ``self.report``).
"""

from __future__ import annotations

__all__ = [
    "BackendUnavailableError",
    "CheckpointError",
    "ConfigurationError",
    "ConversionError",
    "InputFileError",
    "Vp3dError",
]


class Vp3dError(Exception):
    """Root of every error vp3d raises on purpose."""


class ConfigurationError(Vp3dError):
    """Options or settings that cannot work together."""


class BackendUnavailableError(Vp3dError):
    """An optional dependency is missing; the message names the extra to install."""


class CheckpointError(Vp3dError):
    """A checkpoint cannot be found, parsed, or loaded safely."""


class InputFileError(Vp3dError):
    """A user-supplied file is missing, unreadable or malformed."""


class ConversionError(Vp3dError):
    """Input that is valid but cannot be converted as asked."""
