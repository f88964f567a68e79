"""The ``tusk`` command's entry point. Loading the CLI's modules takes a few tenths of a second; a Ctrl-C in that
time ends the command with the CLI's one line and exit code 130, not a traceback from the middle of an import.
Once ``tusk.cli.main.main`` runs, its own handler takes over."""

from __future__ import annotations

import os
import signal
import threading

_WHILE_LOADING = b"error: interrupted: nothing was committed\n"


def _interrupted_while_loading(signum: int, frame: object) -> None:
    os.write(2, _WHILE_LOADING)  # (nothing has been asked of a store yet: the command has not started)
    os._exit(130)


def run() -> None:
    """``tusk`` and ``python -m tusk``."""
    on_main = threading.current_thread() is threading.main_thread()
    if on_main:
        signal.signal(signal.SIGINT, _interrupted_while_loading)
    from tusk.cli.main import main

    if on_main:  # (what main restores when it ends)
        signal.signal(signal.SIGINT, signal.default_int_handler)
    main()
