"""Stream a Job's rank-0 logs into the rule's log: whole, in order, and each line once.

Logs are read with ``timestamps=true``: each line comes with the kubelet's nanosecond
timestamp, which the rule's log does not show but which says where a stream left off.
A stream that ends while its pod still runs, or goes silent longer than the read timeout
(a dropped connection, a dead node), is reopened from a little before the last line
written (``sinceSeconds``: the client has no ``sinceTime``, so a margin covers clock
skew) and the lines already written are skipped. The position per pod is kept in a small
file beside the log, so a launcher that re-attaches to a running Job after a restart
resumes where the previous one stopped instead of writing the whole log again.
"""

from __future__ import annotations

import json
import logging
import math
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from .k8s_watch import STARTED_PHASES, rank0_pods, request_timeout, waiting_reason
from .manifests import CONTAINER

logger = logging.getLogger(__name__)

# Reopened streams start this much before the last line written (lines already written
# are skipped): covers the skew between this machine's clock and the node's.
SINCE_SLACK_SECONDS = 120
# Failed reads of a finished pod's log before its rest is given up (its node is gone).
FINISHED_POD_READS = 3
_TIMESTAMP = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?(Z|[+-]\d\d:\d\d)$")


def parse_timestamp(text: str) -> int | None:
    """An RFC 3339 timestamp (as the kubelet writes them, trailing zeros trimmed) in ns."""
    match = _TIMESTAMP.match(text)
    if match is None:
        return None
    zone = "+00:00" if match[3] == "Z" else match[3]
    seconds = int(datetime.fromisoformat(match[1] + zone).timestamp())
    return seconds * 10**9 + int((match[2] or "0").ljust(9, "0"))


@dataclass
class PodPosition:
    """How far a pod's log has been written: the last timestamp and its lines so far."""

    last_ns: int = 0
    at_last: int = 0
    seen_at_last: int = 0  # lines with ``last_ns`` met in the current stream

    def restart(self) -> None:
        """A new stream begins: lines at ``last_ns`` are counted again from zero."""
        self.seen_at_last = 0

    def admit(self, ns: int) -> bool:
        """Whether the line stamped ``ns`` is new (and, if so, record it)."""
        if ns < self.last_ns:
            return False
        if ns == self.last_ns:
            self.seen_at_last += 1
            if self.seen_at_last <= self.at_last:
                return False
            self.at_last += 1
            return True
        self.last_ns, self.at_last, self.seen_at_last = ns, 1, 1
        return True


class LogPositions:
    """The positions of every pod of one rule log, kept in a file beside it.

    Args:
        path: the file (None: kept in memory only, e.g. a log on stdout).
    """

    def __init__(self, path: Path | None):
        self.path = path
        self.pods: dict[str, PodPosition] = {}
        self.announced: list[str] = []
        if path is not None and path.exists():
            try:
                data = json.loads(path.read_text())
                self.pods = {k: PodPosition(*v) for k, v in data.get("pods", {}).items()}
                self.announced = list(data.get("announced", []))
            except (ValueError, TypeError) as exc:  # a torn file: start afresh
                logger.warning("ignoring unreadable %s: %s", path, exc)

    def of(self, pod: str) -> PodPosition:
        return self.pods.setdefault(pod, PodPosition())

    def save(self) -> None:
        if self.path is None:
            return
        from audioflow.atomic import write_text

        data = {
            "pods": {k: [v.last_ns, v.at_last] for k, v in self.pods.items()},
            "announced": self.announced,
        }
        write_text(self.path, json.dumps(data), fsync=False)


def positions_path(log_path: Path) -> Path:
    """Where the log positions of ``log_path`` are kept."""
    return log_path.with_name(f".{log_path.name}.k8s.json")


class RankZeroLogs(threading.Thread):
    """Streams the logs of every rank-0 pod of a Job, one after the other, to ``sink``.

    A preempted pod is replaced by a new one with a new name; each gets a header line, so
    the rule's log shows every attempt in order. Runs as a daemon; :meth:`finish` lets it
    write what is left, and :meth:`stop` ends it, whatever its pods still write.

    Args:
        core: a ``CoreV1Api``.
        namespace: the pods' namespace.
        name: the Job's name.
        sink: receives the log bytes (appends to the rule's log file).
        poll_seconds: how often the pod list is read while no pod is streaming.
        read_timeout: silence after which a log stream is reopened.
        positions: where each pod's log has been written up to.
    """

    def __init__(
        self,
        core,
        namespace: str,
        name: str,
        sink: Callable[[bytes], None],
        poll_seconds: float,
        read_timeout: float,
        positions: LogPositions,
    ):
        super().__init__(name=f"logs-{name}", daemon=True)
        self.core, self.namespace, self.job, self.sink = core, namespace, name, sink
        self.poll_seconds, self.read_timeout = poll_seconds, read_timeout
        self.positions = positions
        self.done: set[str] = set()
        self.reported: dict[str, str] = {}  # pod -> last waiting reason written
        self._read_failures: dict[str, int] = {}
        self._finishing = threading.Event()
        self._stopped = threading.Event()
        self._response = None  # the stream being read, shut by stop()

    def finish(self, timeout: float) -> list[str]:
        """Write what is left (pods that ended before they were seen), then stop.

        Returns:
            The started pods whose log could not be written whole within ``timeout``.
        """
        self._finishing.set()
        self.join(timeout)
        return [p for p in self.positions.announced if p not in self.done]

    def stop(self, timeout: float = 5.0) -> None:
        """End the thread now: shut the stream it reads and wait for it to return.

        A thread left running past the launcher (a pod that never ends its log) would
        still be inside a read, or writing a warning, while the interpreter shuts down,
        which aborts the process (a daemon thread holding the stderr lock at exit).
        """
        import socket

        self._stopped.set()
        self._finishing.set()
        response = self._response
        sock = getattr(getattr(response, "connection", None), "sock", None)
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)  # wakes the blocked read at once
            except OSError:
                pass  # already closed
        if self.is_alive():
            self.join(timeout)

    def run(self) -> None:
        while not self._stopped.is_set():
            final = self._finishing.is_set()
            try:
                busy = self._step()
            except Exception as exc:  # noqa: BLE001 - logs are best effort, the Job decides
                if self._stopped.is_set():
                    return
                logger.warning("following the logs of %s failed: %s", self.job, exc)
                busy = False
            if final and not busy:
                return
            if not busy:
                self._finishing.wait(self.poll_seconds)

    def _step(self) -> bool:
        """Stream the oldest started rank-0 pod not fully written; False if there is none."""
        pods = rank0_pods(self.core, self.namespace, self.job, self.read_timeout)
        for pod in pods:
            pod_name = pod["metadata"]["name"]
            phase = (pod.get("status") or {}).get("phase")
            reason = waiting_reason(pod) if phase == "Pending" else None
            if reason and self.reported.get(pod_name) != reason:
                # Said once per change, so a pod stuck on a quota or a bad image is visible.
                self.reported[pod_name] = reason
                self.sink(f"[audioflow] pod {pod_name} is waiting: {reason}\n".encode())
        for pod in pods:
            pod_name = pod["metadata"]["name"]
            if pod_name in self.done:
                continue
            if (pod.get("status") or {}).get("phase") not in STARTED_PHASES:
                continue
            if pod_name not in self.positions.announced:
                self.positions.announced.append(pod_name)
                attempt = len(self.positions.announced)
                self.sink(f"[audioflow] logs of pod {pod_name} (attempt {attempt})\n".encode())
            started = time.monotonic()
            outcome = self._stream(pod_name)
            if outcome == "stopped":
                return False
            self._settle(pod_name, outcome)
            if pod_name not in self.done and time.monotonic() - started < self.poll_seconds:
                time.sleep(self.poll_seconds)  # a stream that ends at once: do not spin
            return True
        return False

    def _stream(self, pod_name: str) -> str:
        """Write the pod's new lines until its stream ends: "eof", "timeout", "error" or
        "stopped" (by :meth:`stop`)."""
        from urllib3.exceptions import ProtocolError, ReadTimeoutError

        position = self.positions.of(pod_name)
        position.restart()
        options = {
            "container": CONTAINER,
            "follow": True,
            "timestamps": True,
            "_preload_content": False,
            "_request_timeout": request_timeout(self.read_timeout),
        }
        if position.last_ns:
            behind = time.time() - position.last_ns / 1e9
            options["since_seconds"] = max(1, math.ceil(behind) + SINCE_SLACK_SECONDS)
        try:
            response = self.core.read_namespaced_pod_log(pod_name, self.namespace, **options)
        except Exception as exc:  # noqa: BLE001 - a pod that never started has no logs
            logger.info("no log stream from pod %s: %s", pod_name, exc)
            return "error"
        pending = b""
        outcome = "eof"
        self._response = response
        try:
            # read1 returns what has arrived, so lines reach the log as the pod writes them.
            for chunk in iter(lambda: response.read1(65536), b""):
                if self._stopped.is_set():
                    outcome = "stopped"
                    break
                *lines, pending = (pending + chunk).split(b"\n")
                self._write(position, [line + b"\n" for line in lines])
        except (ReadTimeoutError, ProtocolError, TimeoutError):
            outcome = "timeout"
        except Exception as exc:  # noqa: BLE001 - a dropped stream must not end the wait
            if self._stopped.is_set():
                outcome = "stopped"  # stop() shut the socket under the read
            else:
                logger.info("log stream of pod %s broke: %s", pod_name, exc)
                outcome = "error"
        finally:
            self._response = None
            if outcome != "eof":
                response.close()  # never hand a half-read connection back to the pool
            response.release_conn()
        if pending and outcome == "eof":
            self._write(position, [pending])  # a last line without its newline
        return outcome

    def _write(self, position: PodPosition, lines: list[bytes]) -> None:
        if self._stopped.is_set():
            return
        out = []
        for line in lines:
            stamp, _, text = line.partition(b" ")
            ns = parse_timestamp(stamp.decode(errors="replace"))
            if ns is None:
                out.append(line)  # not stamped: nothing to compare, keep it
            elif position.admit(ns):
                out.append(text)
        if out:
            self.sink(b"".join(out))
            self.positions.save()

    def _settle(self, pod_name: str, outcome: str) -> None:
        """After a stream ended: is this pod's log complete, or to be reopened?"""
        from kubernetes.client.exceptions import ApiException

        from .k8s_watch import read_json

        try:
            pod = read_json(
                self.core.read_namespaced_pod(
                    pod_name,
                    self.namespace,
                    _preload_content=False,
                    _request_timeout=request_timeout(self.read_timeout),
                )
            )
        except ApiException as exc:
            if exc.status != 404:
                return  # try again on the next step
            pod = None
        if pod is None:
            self._give_up(pod_name, outcome, "the pod is gone")
            return
        if (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
            if outcome == "eof":
                self.done.add(pod_name)
                return
            failures = self._read_failures.get(pod_name, 0) + 1
            self._read_failures[pod_name] = failures
            if failures >= FINISHED_POD_READS:
                self._give_up(pod_name, outcome, "its node does not answer")
        # Still running: the stream was cut or went silent; the next step reopens it.

    def _give_up(self, pod_name: str, outcome: str, why: str) -> None:
        self.done.add(pod_name)
        if outcome != "eof":
            self.sink(f"[audioflow] the rest of pod {pod_name}'s log is lost: {why}\n".encode())
