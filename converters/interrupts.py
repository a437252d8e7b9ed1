"""SIGINT and SIGTERM as an exception, so an interrupted command cleans up like a failed one.

Inside :func:`interrupts_raise`, either signal raises :class:`Interrupted` in the main thread at
the next Python instruction: the ``finally`` blocks and context managers on the way out remove
temporary files and folders (see :mod:`converters.fileio`), and the command exits with
``128 + signal number`` (130 for SIGINT, 143 for SIGTERM), as shells expect.

Some code catches every exception and prints it (Blender's add-on loader does, for one), so the
request is also remembered: :func:`check_interrupted` raises it again at the points that must not
go ahead once a stop was asked for, such as moving a result's files into place; and inside
:func:`interrupts_deferred` (around calls into Blender) a signal is only recorded, and raised when
the call returns.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from types import FrameType

__all__ = ["Interrupted", "check_interrupted", "interrupts_deferred", "interrupts_raise"]

_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupted(BaseException):
    """The process was asked to stop (not an error of the input, so not a :class:`Vp3dError`)."""

    def __init__(self, signum: int) -> None:
        self.signum = signum
        super().__init__(f"interrupted by {signal.Signals(signum).name}")

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


_requested: list[int] = []  # the signal that asked this process to stop, once one has
_deferred: list[bool] = []  # one entry per open interrupts_deferred()


def _raise(signum: int, frame: FrameType | None) -> None:
    if _requested:  # a second signal must not interrupt the clean-up of the first
        return
    _requested.append(signum)
    if not _deferred:
        raise Interrupted(signum)


@contextlib.contextmanager
def interrupts_deferred() -> Iterator[None]:
    """Record SIGINT and SIGTERM without raising until the block ends (for code that would catch
    the exception and carry on, printing tracebacks)."""
    _deferred.append(True)
    try:
        yield
    finally:
        _deferred.pop()
    check_interrupted()


def check_interrupted() -> None:
    """Raise :class:`Interrupted` again if a stop was asked for (even if the first was swallowed)."""
    if _requested:
        raise Interrupted(_requested[0])


@contextlib.contextmanager
def interrupts_raise() -> Iterator[None]:
    """Turn SIGINT and SIGTERM into :class:`Interrupted` for the duration (main thread only; a
    no-op elsewhere, where Python cannot install handlers)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = {s: signal.signal(s, _raise) for s in _SIGNALS}
    try:
        yield
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)
