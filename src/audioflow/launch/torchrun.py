"""torchrun that keeps a worker's configuration-error exit status.

torchrun exits 1 whatever status its failed worker returned, which would hide the
configuration-error code (2) that tells launchers and the Kubernetes podFailurePolicy not
to retry. This entry point runs torchrun itself (same arguments) and exits 2 when any
worker did, 1 on any other worker failure.

Example: python -m audioflow.launch.torchrun --standalone --nproc-per-node=1 -m audioflow.cli run
"""

from __future__ import annotations

import sys
from collections.abc import Iterable

from .base import CONFIG_ERROR_EXIT_CODE


def failure_status(exit_codes: Iterable[int]) -> int:
    """The exit status for failed workers: 2 if any had a configuration error, else 1."""
    return CONFIG_ERROR_EXIT_CODE if CONFIG_ERROR_EXIT_CODE in set(exit_codes) else 1


def main(argv: list[str] | None = None) -> int:
    """Run torchrun with ``argv`` (default: this process's arguments).

    Returns:
        0 on success, ``CONFIG_ERROR_EXIT_CODE`` if a worker exited with it, else 1.
    """
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import main as torchrun_main

    try:
        torchrun_main(sys.argv[1:] if argv is None else argv)
    except ChildFailedError as exc:
        return failure_status(failure.exitcode for failure in exc.failures.values())
    return 0


if __name__ == "__main__":
    sys.exit(main())
