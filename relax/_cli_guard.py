"""Ctrl-C while the ``relax`` command is still importing: one line, exit 130.

``relax/__init__`` imports this first.  Only when the process was started as the
command line (the ``relax`` script or ``python -m relax.cli``) does it install a
``sys.excepthook`` that turns an uncaught :class:`KeyboardInterrupt` (raised
during the imports, before :func:`relax.cli.main` can catch it) into the line
``relax: interrupted`` and exit code 130; every other exception, and every
library use of relax, is left alone.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path


def _launched_as_cli() -> bool:
    argv = list(getattr(sys, "orig_argv", sys.argv))
    as_module = any(a == "-m" and b == "relax.cli" for a, b in zip(argv, argv[1:]))
    return as_module or Path(sys.argv[0]).name in ("relax", "relax.exe")


def _hook(kind, value, tb, previous=sys.excepthook):
    if issubclass(kind, KeyboardInterrupt):
        sys.stderr.write("relax: interrupted\n")
        sys.stderr.flush()
        os._exit(130)
    previous(kind, value, tb)


if _launched_as_cli():
    sys.excepthook = _hook
