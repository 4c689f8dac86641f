"""Follow a submitted Job: watch it to its end, and know why its pods do not start.

Objects are handled as the API server's JSON (plain dicts), read with
``_preload_content=False``: nothing depends on the client's model classes keeping up with
the server's fields. Every request carries a client-side timeout: a server (or a proxy)
that sends headers and then nothing is noticed after ``watch_seconds + read_timeout`` and
the watch is reopened from the last resourceVersion seen, never waited on forever.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .base import CONFIG_ERROR_EXIT_CODE, PEER_LOST_EXIT_CODE
from .manifests import CONTAINER, INDEX_ANNOTATION, JOB_LABEL

logger = logging.getLogger(__name__)

TERMINAL_CONDITIONS = ("Complete", "Failed")
# Watches end after this long (server side) and are reopened.
WATCH_SECONDS = 60
# Silence, beyond what a request may legitimately take, after which it is abandoned.
READ_TIMEOUT_SECONDS = 30
CONNECT_TIMEOUT_SECONDS = 10
API_ERRORS_TOLERATED = 10
STARTED_PHASES = ("Running", "Succeeded", "Failed")
# Waiting reasons that retrying cannot fix: the image or the pod's config is wrong.
CONFIG_WAITING_REASONS = (
    "ErrImagePull",
    "ImagePullBackOff",
    "InvalidImageName",
    "CreateContainerConfigError",
)


def request_timeout(read_seconds: float) -> tuple[float, float]:
    """The client's ``_request_timeout``: (connect, read) seconds."""
    return (CONNECT_TIMEOUT_SECONDS, read_seconds)


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


def read_job(batch, namespace: str, name: str, read_seconds: float = READ_TIMEOUT_SECONDS):
    """The Job named ``name`` as a dict, or None if there is none.

    Raises:
        kubernetes.client.exceptions.ApiException: any error but 404.
    """
    from kubernetes.client.exceptions import ApiException

    try:
        response = batch.read_namespaced_job(
            name, namespace, _preload_content=False, _request_timeout=request_timeout(read_seconds)
        )
        return read_json(response)
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise


def wait_for_job(
    batch,
    namespace: str,
    name: str,
    job: dict,
    watch_seconds: int = WATCH_SECONDS,
    read_timeout: float = READ_TIMEOUT_SECONDS,
    on_tick: Callable[[dict], None] | None = None,
) -> dict | None:
    """Watch the Job until it completes or fails.

    Args:
        batch: a ``BatchV1Api``.
        namespace: the Job's namespace.
        name: the Job's name.
        job: the Job as last read (its resourceVersion is where the watch starts).
        watch_seconds: length of one watch request before it is reopened.
        read_timeout: silence beyond ``watch_seconds`` after which a watch is abandoned.
        on_tick: called with the Job as last seen between watch requests (at least every
            ``watch_seconds + read_timeout``); may raise to stop waiting (a deadline).

    Returns:
        The Job in its terminal state, or None if it was deleted before finishing.

    Raises:
        kubernetes.client.exceptions.ApiException: the API kept failing.
    """
    from kubernetes import watch
    from kubernetes.client.exceptions import ApiException
    from urllib3.exceptions import HTTPError, ProtocolError, ReadTimeoutError

    errors = 0
    while job_condition(job) is None:
        if on_tick is not None:
            on_tick(job)
        version = job["metadata"].get("resourceVersion")
        try:
            stream = watch.Watch().stream(
                batch.list_namespaced_job,
                namespace,
                field_selector=f"metadata.name={name}",
                resource_version=version,
                timeout_seconds=watch_seconds,
                _request_timeout=request_timeout(watch_seconds + read_timeout),
            )
            for event in stream:
                if event["type"] == "DELETED":
                    return None
                if event["type"] in ("ADDED", "MODIFIED"):
                    job = event["raw_object"]
                    if job_condition(job) is not None:
                        return job
            errors = 0
        except (ReadTimeoutError, ProtocolError) as exc:
            # A silent or cut stream, not a failing API: reopen at once.
            logger.info("watch of job %s reopened after %s", name, exc)
        except (ApiException, HTTPError) as exc:
            # 410 Gone: the resourceVersion expired; anything else: the API hiccupped.
            # Either way, read the Job afresh and watch from there.
            if getattr(exc, "status", None) != 410:
                errors += 1
                if errors > API_ERRORS_TOLERATED:
                    raise
                time.sleep(min(30, 2**errors))
            logger.info("re-reading job %s after %s", name, exc)
        fresh = read_job(batch, namespace, name, read_timeout)
        if fresh is None:
            return None
        job = fresh
    return job


def job_pods(core, namespace: str, name: str, read_seconds: float = READ_TIMEOUT_SECONDS):
    """Every pod of the Job, oldest first."""
    pods = read_json(
        core.list_namespaced_pod(
            namespace,
            label_selector=f"{JOB_LABEL}={name}",
            _preload_content=False,
            _request_timeout=request_timeout(read_seconds),
        )
    )["items"]
    return sorted(pods, key=_age_key)


def _age_key(pod: dict) -> tuple[str, str]:
    return (pod["metadata"].get("creationTimestamp", ""), pod["metadata"]["name"])


def pod_index(pod: dict) -> str | None:
    """The pod's completion index (its node rank) as the Job controller wrote it."""
    return (pod["metadata"].get("annotations") or {}).get(INDEX_ANNOTATION)


def rank0_pods(core, namespace: str, name: str, read_seconds: float = READ_TIMEOUT_SECONDS):
    """The job's rank-0 pods (node index 0), oldest first: one per attempt."""
    return [p for p in job_pods(core, namespace, name, read_seconds) if pod_index(p) == "0"]


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


def disrupted(pod: dict) -> bool:
    """Whether the pod carries the DisruptionTarget condition (preempted, evicted...)."""
    return any(
        c.get("type") == "DisruptionTarget" and c.get("status") == "True"
        for c in (pod.get("status") or {}).get("conditions") or []
    )


def real_exit_code(pods: list[dict]) -> int | None:
    """The exit code that says what went wrong: the newest attempt's rank 0, else the
    first failing rank of that attempt.

    Pods that were disrupted or only lost a peer are left out: their code says nothing
    about the stage.
    """
    failed = [
        (pod, code)
        for pod, code in ((p, container_exit_code(p)) for p in pods)
        if code and code != PEER_LOST_EXIT_CODE and not disrupted(pod)
    ]
    # Pods of one attempt are created together: rank 0 sorts last among them.
    failed.sort(key=lambda pc: (_age_key(pc[0])[0], pod_index(pc[0]) == "0"))
    return failed[-1][1] if failed else None


@dataclass
class StartTimeout(Exception):
    """The Job's pods did not all start within the start deadline.

    Attributes:
        reason: one line: what kept them (the pods' waiting reasons, the Job's events).
        exit_code: ``CONFIG_ERROR_EXIT_CODE`` when retrying cannot help (a bad image).
    """

    reason: str
    exit_code: int

    def __str__(self) -> str:
        return self.reason


class StartDeadline:
    """All of a Job's pods must be running within ``seconds`` of it needing them.

    The clock runs while some index has no started pod, from the first look (submit or
    re-attach) or from a pod's loss, and not while the Job is suspended (queued by
    Kueue, which admits all of its pods at once). It stops when every index has started.

    Args:
        seconds: the deadline (0: none).
        nodes: the Job's pod count (its completions).
        events: returns the Job's event messages (quota refusals appear only there).
        clock: monotonic time source.
    """

    def __init__(
        self,
        seconds: float,
        nodes: int,
        events: Callable[[], list[str]],
        clock: Callable[[], float] = time.monotonic,
    ):
        self.seconds, self.nodes, self.events, self.clock = seconds, nodes, events, clock
        self.waiting_since: float | None = None

    def check(self, job: dict, pods: list[dict]) -> None:
        """Raise :class:`StartTimeout` if the deadline has passed with pods not started."""
        if not self.seconds:
            return
        if (job.get("spec") or {}).get("suspend"):
            self.waiting_since = None
            return
        newest: dict[str, dict] = {}
        for pod in pods:
            index = pod_index(pod)
            if index is not None:
                newest[index] = pod
        started = [
            i for i, p in newest.items() if (p.get("status") or {}).get("phase") in STARTED_PHASES
        ]
        if len(started) >= self.nodes:
            self.waiting_since = None
            return
        now = self.clock()
        if self.waiting_since is None:
            self.waiting_since = now
        if now - self.waiting_since < self.seconds:
            return
        reasons, code = [], 1
        for index, pod in sorted(newest.items()):
            reason = waiting_reason(pod) if index not in started else None
            if reason:
                reasons.append(f"pod {pod['metadata']['name']}: {reason}")
                if reason.split(":", 1)[0] in CONFIG_WAITING_REASONS:
                    code = CONFIG_ERROR_EXIT_CODE
        if len(newest) < self.nodes:
            missing = self.nodes - len(newest)
            why = "; ".join(self.events()[-2:]) or "no reason given by the Job's events"
            reasons.append(f"{missing} pod(s) not created: {why}")
        detail = "; ".join(reasons) or "pods pending without a reason"
        raise StartTimeout(
            f"{len(started)}/{self.nodes} pod(s) running after {self.seconds:.0f}s: {detail}",
            code,
        )


def job_events(core, namespace: str, name: str, read_seconds: float = READ_TIMEOUT_SECONDS):
    """Messages of the Job's events (FailedCreate: quota refusals...), oldest first."""
    try:
        events = read_json(
            core.list_namespaced_event(
                namespace,
                field_selector=f"involvedObject.kind=Job,involvedObject.name={name}",
                _preload_content=False,
                _request_timeout=request_timeout(read_seconds),
            )
        )["items"]
    except Exception as exc:  # noqa: BLE001 - events only explain; never fail the wait
        logger.info("events of job %s unreadable: %s", name, exc)
        return []
    events.sort(key=lambda e: e.get("lastTimestamp") or e.get("eventTime") or "")
    return [f"{e.get('reason', '')}: {e.get('message', '')}".strip() for e in events]
