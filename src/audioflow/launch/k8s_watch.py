"""Follow a submitted Job: watch it to its end and stream its rank-0 pod's logs.

Objects are handled as the API server's JSON (plain dicts), read with
``_preload_content=False``: nothing depends on the client's model classes keeping up with
the server's fields.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from .manifests import CONTAINER, INDEX_ANNOTATION, JOB_LABEL

logger = logging.getLogger(__name__)

TERMINAL_CONDITIONS = ("Complete", "Failed")
# Watches end after this long and are reopened, so a silently dropped connection is noticed.
WATCH_SECONDS = 60
API_ERRORS_TOLERATED = 10


def read_json(response) -> Any:
    """Decode an API response read with ``_preload_content=False``."""
    try:
        return json.loads(response.data)
    finally:
        response.release_conn()


def job_condition(job: dict) -> dict | None:
    """The Job's terminal condition (``Complete`` or ``Failed`` with status True), if any."""
    for cond in (job.get("status") or {}).get("conditions") or []:
        if cond.get("type") in TERMINAL_CONDITIONS and cond.get("status") == "True":
            return cond
    return None


def read_job(batch, namespace: str, name: str) -> dict | None:
    """The Job named ``name`` as a dict, or None if there is none.

    Raises:
        kubernetes.client.exceptions.ApiException: any error but 404.
    """
    from kubernetes.client.exceptions import ApiException

    try:
        return read_json(batch.read_namespaced_job(name, namespace, _preload_content=False))
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise


def wait_for_job(
    batch, namespace: str, name: str, job: dict, watch_seconds: int = WATCH_SECONDS
) -> dict | None:
    """Watch the Job until it completes or fails.

    Args:
        batch: a ``BatchV1Api``.
        namespace: the Job's namespace.
        name: the Job's name.
        job: the Job as last read (its resourceVersion is where the watch starts).
        watch_seconds: length of one watch request before it is reopened.

    Returns:
        The Job in its terminal state, or None if it was deleted before finishing.

    Raises:
        kubernetes.client.exceptions.ApiException: the API kept failing.
    """
    from kubernetes import watch
    from kubernetes.client.exceptions import ApiException
    from urllib3.exceptions import HTTPError

    errors = 0
    while job_condition(job) is None:
        version = job["metadata"].get("resourceVersion")
        try:
            stream = watch.Watch().stream(
                batch.list_namespaced_job,
                namespace,
                field_selector=f"metadata.name={name}",
                resource_version=version,
                timeout_seconds=watch_seconds,
            )
            for event in stream:
                if event["type"] == "DELETED":
                    return None
                if event["type"] in ("ADDED", "MODIFIED"):
                    job = event["raw_object"]
                    if job_condition(job) is not None:
                        return job
            errors = 0
        except (ApiException, HTTPError) as exc:
            # 410 Gone: the resourceVersion expired; anything else: the API hiccupped.
            # Either way, read the Job afresh and watch from there.
            if getattr(exc, "status", None) != 410:
                errors += 1
                if errors > API_ERRORS_TOLERATED:
                    raise
                time.sleep(min(30, 2**errors))
            logger.info("re-reading job %s after %s", name, exc)
        fresh = read_job(batch, namespace, name)
        if fresh is None:
            return None
        job = fresh
    return job


def rank0_pods(core, namespace: str, name: str) -> list[dict]:
    """The job's rank-0 pods (node index 0), oldest first: one per attempt."""
    pods = read_json(
        core.list_namespaced_pod(
            namespace, label_selector=f"{JOB_LABEL}={name}", _preload_content=False
        )
    )["items"]
    rank0 = [p for p in pods if p["metadata"].get("annotations", {}).get(INDEX_ANNOTATION) == "0"]
    return sorted(
        rank0, key=lambda p: (p["metadata"].get("creationTimestamp", ""), p["metadata"]["name"])
    )


def waiting_reason(pod: dict) -> str | None:
    """Why a pod has not started: unschedulable, image pull errors... (None if no reason)."""
    status = pod.get("status") or {}
    for cond in status.get("conditions") or []:
        if cond.get("type") == "PodScheduled" and cond.get("status") == "False":
            return f"{cond.get('reason', 'not scheduled')}: {cond.get('message', '')}".strip()
    for container in status.get("containerStatuses") or []:
        waiting = (container.get("state") or {}).get("waiting")
        if waiting and waiting.get("reason") not in (None, "ContainerCreating"):
            return f"{waiting['reason']}: {waiting.get('message', '')}".strip()
    return None


def container_exit_code(pod: dict) -> int | None:
    """The trainer container's exit code, if it has terminated."""
    for status in (pod.get("status") or {}).get("containerStatuses") or []:
        if status.get("name") == CONTAINER:
            terminated = (status.get("state") or {}).get("terminated")
            if terminated:
                return int(terminated.get("exitCode", 1))
    return None


class RankZeroLogs(threading.Thread):
    """Streams the logs of every rank-0 pod of a Job, one after the other, to ``sink``.

    A preempted pod is replaced by a new one with a new name; each gets a header line, so
    the rule's log shows every attempt in order. Runs as a daemon: a log stream blocked on
    a silent pod never keeps the process alive.

    Args:
        core: a ``CoreV1Api``.
        namespace: the pods' namespace.
        name: the Job's name.
        sink: receives the log bytes (appends to the rule's log file).
        poll_seconds: how often the pod list is read while no pod is streaming.
    """

    def __init__(
        self, core, namespace: str, name: str, sink: Callable[[bytes], None], poll_seconds: float
    ):
        super().__init__(name=f"logs-{name}", daemon=True)
        self.core, self.namespace, self.job, self.sink = core, namespace, name, sink
        self.poll_seconds = poll_seconds
        self.streamed: list[str] = []
        self.reported: dict[str, str] = {}  # pod -> last waiting reason written
        self.last_exit_code: int | None = None
        self._finishing = threading.Event()

    def finish(self, timeout: float) -> None:
        """Stream what is left (pods that ended before they were seen), then stop."""
        self._finishing.set()
        self.join(timeout)

    def run(self) -> None:
        while True:
            final = self._finishing.is_set()
            try:
                self._stream_new_pods()
            except Exception as exc:  # noqa: BLE001 - logs are best effort, the Job decides
                logger.warning("listing pods of %s failed: %s", self.job, exc)
            if final:
                return
            self._finishing.wait(self.poll_seconds)

    def _stream_new_pods(self) -> None:
        for pod in rank0_pods(self.core, self.namespace, self.job):
            pod_name = pod["metadata"]["name"]
            code = container_exit_code(pod)
            if code is not None:
                self.last_exit_code = code
            phase = (pod.get("status") or {}).get("phase")
            reason = waiting_reason(pod) if phase == "Pending" else None
            if reason and self.reported.get(pod_name) != reason:
                # Said once per change, so a pod stuck on a quota or a bad image is visible.
                self.reported[pod_name] = reason
                self.sink(f"[audioflow] pod {pod_name} is waiting: {reason}\n".encode())
            if pod_name in self.streamed or phase not in ("Running", "Succeeded", "Failed"):
                continue
            self.streamed.append(pod_name)
            attempt = len(self.streamed)
            self.sink(f"[audioflow] logs of pod {pod_name} (attempt {attempt})\n".encode())
            self._stream(pod_name)

    def _stream(self, pod_name: str) -> None:
        try:
            response = self.core.read_namespaced_pod_log(
                pod_name, self.namespace, container=CONTAINER, follow=True, _preload_content=False
            )
        except Exception as exc:  # noqa: BLE001 - a pod that never started has no logs
            self.sink(f"[audioflow] no logs from pod {pod_name}: {exc}\n".encode())
            return
        try:
            # read1 returns what has arrived, so lines reach the log as the pod writes them.
            for chunk in iter(lambda: response.read1(65536), b""):
                self.sink(chunk)
        except Exception as exc:  # noqa: BLE001 - a dropped stream must not end the wait
            self.sink(f"\n[audioflow] log stream of pod {pod_name} interrupted: {exc}\n".encode())
        finally:
            response.release_conn()
