"""SIGINT and SIGTERM as an exception, so an interrupted command cleans up like a failed one.

Inside :func:`interrupts_raise`, either signal raises :class:`Interrupted` in the main thread at
the next Python instruction: the ``finally`` blocks and context managers on the way out remove
temporary files and folders (see :mod:`converters.fileio`), and the command exits with
``128 + signal number`` (130 for SIGINT, 143 for SIGTERM), as shells expect.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from types import FrameType

__all__ = ["Interrupted", "interrupts_raise"]

_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupted(BaseException):
    """The process was asked to stop (not an error of the input, so not a :class:`Vp3dError`)."""

    def __init__(self, signum: int) -> None:
        self.signum = signum
        super().__init__(f"interrupted by {signal.Signals(signum).name}")

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


def _raise(signum: int, frame: FrameType | None) -> None:
    for s in _SIGNALS:  # a second signal during clean-up must not interrupt the clean-up
        signal.signal(s, signal.SIG_IGN)
    raise Interrupted(signum)


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
