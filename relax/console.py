"""Keep the command line's stdout for its results.

While a command works, file descriptor 1 points at stderr, so nothing a
third-party library prints -- Python ``print`` or C/C++ ``printf`` (HiGHS
banners, solver logs) -- can reach stdout.  The command writes its results to
a duplicate of the original stdout that :func:`results_stream` hands out; when
the block ends, C's stdio buffers are flushed (while fd 1 still points at
stderr) and fd 1 is restored.

When ``sys.stdout`` is not the process's fd 1 (an in-process caller captured
it), results go to that object instead, and fd 1 is still redirected.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import logging
import os
import sys
import time
from typing import Iterator, TextIO

__all__ = ["results_stream", "long_run_progress", "LateProgress"]


def _flush_c_stdio() -> None:
    """``fflush(NULL)``: push out what C libraries buffered while fd 1 was stderr."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None)
        libc.fflush(None)
    except (OSError, AttributeError):  # no C library to flush (unusual platforms)
        pass


def _stdout_is_fd1(stream) -> bool:
    try:
        return stream.fileno() == 1
    except (AttributeError, OSError, ValueError):
        return False


@contextlib.contextmanager
def results_stream() -> Iterator[TextIO]:
    """Yield the stream for results; everything else written to fd 1 goes to stderr."""
    original = sys.stdout
    original.flush()
    try:
        saved = os.dup(1)
    except OSError:  # fd 1 is closed: nothing to protect
        yield original
        return
    out = os.fdopen(os.dup(saved), "w", encoding="utf-8") if _stdout_is_fd1(original) else original
    sys.stderr.flush()
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    try:
        yield out
    finally:
        sys.stdout = original
        _flush_c_stdio()
        out.flush()
        os.dup2(saved, 1)
        os.close(saved)
        if out is not original:
            out.close()


#: a single verification shows relax's INFO log lines (phase, current bound) on stderr
#: once it has run this long, unless ``--quiet``
PROGRESS_AFTER_SECONDS = 2.0


class LateProgress(logging.Handler):
    """Shows INFO records of the ``relax`` loggers only after ``after`` seconds, so
    quick runs stay silent and long ones say what they are doing."""

    def __init__(self, after: float):
        super().__init__(logging.INFO)
        self.start = time.monotonic()
        self.after = after
        self.setFormatter(logging.Formatter("relax: %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno < logging.WARNING and time.monotonic() - self.start >= self.after:
            sys.stderr.write(self.format(record) + "\n")


@contextlib.contextmanager
def long_run_progress(enabled: bool) -> Iterator[None]:
    """Attach :class:`LateProgress` to the ``relax`` logger for the block."""
    if not enabled:
        yield
        return
    logger = logging.getLogger("relax")
    handler, level = LateProgress(PROGRESS_AFTER_SECONDS), logger.level
    logger.addHandler(handler)
    if logger.getEffectiveLevel() > logging.INFO:
        logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
