"""torchrun that keeps its workers' exit status and says when a peer node was lost.

torchrun exits 1 whatever status its failed worker returned, which would hide the
configuration-error code (2) that tells launchers and the Kubernetes podFailurePolicy not
to retry, and the real code a user looks for. This entry point runs torchrun itself (same
arguments) and exits with:

- 0 when every worker succeeded;
- ``CONFIG_ERROR_EXIT_CODE`` (2) when any worker had a configuration error;
- ``PEER_LOST_EXIT_CODE`` (75) on a multi-node job whose failure came from another node:
  one that vanished or was stopped, or whose own failure came first (see
  :mod:`audioflow.launch.peers`); workers stuck in a collective with a lost node are
  stopped after ``AUDIOFLOW_PEER_GRACE`` seconds;
- else the first failed worker's exit code (128 + N for a worker killed by signal N).

Example: python -m audioflow.launch.torchrun --standalone --nproc-per-node=1 -m audioflow.cli run
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Iterable

from .base import CONFIG_ERROR_EXIT_CODE, PEER_LOST_EXIT_CODE
from .peers import PeerWatch, topology_from_torchrun_args

# Tunable per cluster from the pod's environment (seconds).
PEER_SILENCE_ENV, PEER_SILENCE_DEFAULT = "AUDIOFLOW_PEER_SILENCE", 30.0
PEER_JOIN_ENV, PEER_JOIN_DEFAULT = "AUDIOFLOW_PEER_JOIN_TIMEOUT", 600.0  # torchrun's rendezvous
PEER_GRACE_ENV, PEER_GRACE_DEFAULT = "AUDIOFLOW_PEER_GRACE", 10.0


def failure_status(exit_codes: Iterable[int]) -> int:
    """The exit status for failed workers, first failure first.

    Returns:
        2 if any had a configuration error, else the first one's code (128 + N for a
        worker killed by signal N; 1 if none is known).
    """
    codes = list(exit_codes)
    if CONFIG_ERROR_EXIT_CODE in codes:
        return CONFIG_ERROR_EXIT_CODE
    for code in codes:
        if code:
            return 128 - code if code < 0 else code
    return 1


def _seconds(env: str, default: float) -> float:
    try:
        return float(os.environ.get(env, default))
    except ValueError:
        return default


class _StopOnPeerLost(threading.Thread):
    """Stops this node's workers when a peer is lost and they have not failed by then."""

    def __init__(self, watch: PeerWatch, grace: float):
        super().__init__(name="peer-stop", daemon=True)
        self.watch, self.grace = watch, grace
        self.stopping = False
        self.finished = threading.Event()

    def run(self) -> None:
        while not self.watch.lost.wait(0.5):
            if self.finished.is_set():
                return
        if self.finished.wait(self.grace):
            return
        self.stopping = True
        # The SIGTERM handler turns this into a SignalException in the main thread, on
        # which torchrun terminates the workers (one blocked in an NCCL collective with
        # the lost node would never return by itself).
        os.kill(os.getpid(), signal.SIGTERM)


def main(argv: list[str] | None = None) -> int:
    """Run torchrun with ``argv`` (default: this process's arguments).

    Returns:
        The exit status described in the module docstring.
    """
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import main as torchrun_main

    argv = sys.argv[1:] if argv is None else argv
    topology = topology_from_torchrun_args(argv)
    watch = stopper = None
    if topology is not None:
        watch = PeerWatch(
            topology,
            silence_seconds=_seconds(PEER_SILENCE_ENV, PEER_SILENCE_DEFAULT),
            join_seconds=_seconds(PEER_JOIN_ENV, PEER_JOIN_DEFAULT),
        )
        try:
            # Node 0 listens; the others wait for it before their torchrun starts, so a
            # replacement pod never joins the rendezvous of a node 0 that is going away.
            watch.start()
        except (OSError, TimeoutError) as exc:
            print(f"audioflow torchrun: node {topology.node_rank}: {exc}", file=sys.stderr)
            return 1
        _tell_peers_on_sigterm(watch, SignalException)
        stopper = _StopOnPeerLost(watch, _seconds(PEER_GRACE_ENV, PEER_GRACE_DEFAULT))
        stopper.start()
    try:
        torchrun_main(argv)
        status = 0
    except ChildFailedError as exc:
        failures = sorted(exc.failures.values(), key=lambda f: f.timestamp)
        status = failure_status(f.exitcode for f in failures)
    except SignalException as exc:
        status = 128 + int(exc.sigval)
    except Exception as exc:  # noqa: BLE001 - e.g. the store on a lost node 0 is unreachable
        if watch is None:
            raise
        print(f"audioflow torchrun: {type(exc).__name__}: {exc}", file=sys.stderr)
        status = 1
    finally:
        if stopper is not None:
            stopper.finished.set()
    if watch is None:
        return status
    peer_lost = stopper.stopping or (
        status not in (0, CONFIG_ERROR_EXIT_CODE, 128 + signal.SIGTERM)
        and not watch.failure_is_primary(timeout=watch.silence_seconds)
    )
    watch.close(done=status == 0)
    if peer_lost:
        why = watch.reason or "another node failed first"
        print(
            f"audioflow torchrun: node {topology.node_rank}: {why}; exiting "
            f"{PEER_LOST_EXIT_CODE} (peer lost) so that the job restarts the whole gang",
            file=sys.stderr,
        )
        return PEER_LOST_EXIT_CODE
    return status


def _tell_peers_on_sigterm(watch: PeerWatch, signal_exception: type) -> None:
    """SIGTERM (preemption, eviction) tells the peers first, then stops torchrun as its
    own handler would; torchrun is told to leave SIGTERM to this one."""

    def leave(signum, _frame):
        watch.leaving()
        sigval = signal.Signals(signum)
        raise signal_exception(f"Process {os.getpid()} got signal: {sigval}", sigval=sigval)

    os.environ["TORCHELASTIC_SIGNALS_TO_HANDLE"] = "SIGINT,SIGHUP,SIGQUIT"
    signal.signal(signal.SIGTERM, leave)


if __name__ == "__main__":
    from audioflow.quick_exit import exit_now

    exit_now(main())
