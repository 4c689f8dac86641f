"""End a command's process without the interpreter's teardown of its modules.

After ``main()`` returns, Python frees every module object one by one. With torch loaded
that takes 0.7 s on 2 cores, 1.5 s once TorchDynamo is too (building any torch optimizer
loads it); a workflow runs a stage process and its torchrun agent for each of some twenty
jobs in a row, so the demo spent half a minute freeing memory the kernel reclaims anyway.

What an exit owes is still done: the atexit handlers run (logging's flush, multiprocessing
stopping its children, weakref finalizers such as temporary folders' cleanup), then stdio
is flushed. Every file audioflow writes is closed (checkpoints fsynced) before its command
returns, so nothing on disk depends on the teardown. Used by the entry points of processes
that load torch (``audioflow``, ``python -m audioflow.cli`` under torchrun, the torchrun
wrapper, the token encoder); in-process callers (tests) call ``main()`` and keep Python's
usual exit.
"""

from __future__ import annotations

import atexit
import os
import sys
from typing import NoReturn


def exit_now(status: int | None) -> NoReturn:
    """Exit with ``status`` (None: 0) after the atexit handlers and a flush of stdio."""
    code = 0 if status is None else int(status)
    try:
        atexit._run_exitfuncs()  # what the interpreter runs first on a normal exit
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):  # closed or a reader gone: nothing left to save
                pass
        os._exit(code)
