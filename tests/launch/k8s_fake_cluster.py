"""The state behind the Kubernetes API test double: Jobs, Services, NetworkPolicies, pods,
their logs and the Jobs' events.

Tests play the kubelet through :class:`FakeCluster`'s methods (``add_pod``,
``set_pod_status``, ``write_log``, ``cut_log``, ``end_pod``) and the Job controller
either by hand (``finish_job``) or with :class:`JobController`, which applies the
submitted Job's own podFailurePolicy and backoffLimit as Kubernetes documents them. The
HTTP side (``k8s_api_double.py``) serves this state as the API server's REST paths and
JSON.
"""

from __future__ import annotations

import copy
import itertools
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime

INDEX = "batch.kubernetes.io/job-completion-index"


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def rfc3339_nano(ns: int) -> str:
    """As the kubelet stamps log lines: Go's RFC3339Nano, trailing zeros trimmed."""
    seconds, frac = divmod(ns, 10**9)
    stamp = datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    digits = f"{frac:09d}".rstrip("0")
    return f"{stamp}.{digits}Z" if digits else f"{stamp}Z"


def status(code: int, reason: str, message: str) -> dict:
    """A ``v1.Status`` body, as the API server returns for errors."""
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }


class FakeCluster:
    """The state behind the double: Jobs, Services, pods, logs and the Job event history."""

    def __init__(self):
        self.cond = threading.Condition()
        self.jobs: dict[str, dict] = {}
        self.services: dict[str, dict] = {}
        self.pods: dict[str, dict] = {}
        self.network_policies: dict[str, dict] = {}
        self.logs: dict[str, list[tuple[int, bytes]]] = {}  # pod -> (timestamp ns, line)
        self.log_closed: dict[str, bool] = {}
        self.log_cuts: dict[str, int] = {}  # pod -> streams cut so far (cut_log)
        self.job_events: dict[str, list[dict]] = {}  # Job name -> Event objects
        # Requests answered with headers and then silence, as by a dead proxy or node.
        self.silent_watches = 0
        self.silent_log_streams = 0
        self.silent_log_pods: set[str] = set()  # pods on a dead node: every stream silent
        # Deletions that never complete (a finalizer nobody removes).
        self.stuck_deletions = False
        self._last_ns = 0
        self.events: list[tuple[int, str, dict]] = []  # (resourceVersion, type, Job)
        self.requests: list[tuple[str, str, dict]] = []  # (method, path, query)
        self.expired_below = 0  # watches from an older resourceVersion get 410 Gone
        self.on_job_created: Callable[[FakeCluster, dict], None] | None = None
        self.forbidden = False  # answer 403, as the API does without the RBAC of k8s/rbac.yaml
        # POSTs answered 409 for a Job that another controller created and deleted before
        # the launcher could read it back (the name is free again at the next try).
        self.vanishing_conflicts = 0
        self._rv = itertools.count(100)
        self.closed = False

    # -- the API server's side ------------------------------------------------------
    def _stamp(self, obj: dict) -> int:
        rv = next(self._rv)
        obj["metadata"]["resourceVersion"] = str(rv)
        return rv

    def _job_event(self, kind: str, job: dict) -> None:
        rv = self._stamp(job)
        self.events.append((rv, kind, copy.deepcopy(job)))
        self.cond.notify_all()

    def create_job(self, body: dict) -> tuple[int, dict]:
        with self.cond:
            name = body["metadata"]["name"]
            if self.vanishing_conflicts > 0:
                self.vanishing_conflicts -= 1
                return 409, status(409, "AlreadyExists", f'jobs.batch "{name}" already exists')
            if name in self.jobs:
                return 409, status(409, "AlreadyExists", f'jobs.batch "{name}" already exists')
            job = copy.deepcopy(body)
            job["metadata"].update(uid=str(uuid.uuid4()), creationTimestamp=now(), generation=1)
            job["status"] = {}
            self.jobs[name] = job
            self._job_event("ADDED", job)
            created = copy.deepcopy(job)
        if self.on_job_created:
            threading.Thread(target=self.on_job_created, args=(self, created), daemon=True).start()
        return 201, created

    def delete_job(self, name: str, policy: str | None) -> tuple[int, dict]:
        with self.cond:
            job = self.jobs.get(name)
            if job is None:
                return 404, status(404, "NotFound", f'jobs.batch "{name}" not found')
            if self.stuck_deletions:
                job["metadata"]["deletionTimestamp"] = now()
                job["metadata"]["finalizers"] = ["example.com/never-removed"]
                self._job_event("MODIFIED", job)
                return 200, copy.deepcopy(job)
            if policy == "Foreground":
                # The garbage collector removes the pods first; the Job waits, terminating.
                job["metadata"]["deletionTimestamp"] = now()
                job["metadata"]["finalizers"] = ["foregroundDeletion"]
                self._job_event("MODIFIED", job)
                answer = copy.deepcopy(job)
                threading.Timer(0.2, self._collect, args=(name,)).start()
                return 200, answer
            self._collect(name)
            return 200, {"kind": "Status", "apiVersion": "v1", "status": "Success"}

    def _collect(self, name: str) -> None:
        with self.cond:
            job = self.jobs.pop(name, None)
            if job is None:
                return
            for pod_name in [p for p, pod in self.pods.items() if self._owned(pod, job)]:
                self.pods.pop(pod_name)
                self.log_closed[pod_name] = True
            uid = job["metadata"]["uid"]
            for store in (self.services, self.network_policies):
                for obj_name, obj in list(store.items()):
                    owners = obj["metadata"].get("ownerReferences") or []
                    if any(o.get("uid") == uid for o in owners):
                        store.pop(obj_name)
            self._job_event("DELETED", job)

    @staticmethod
    def _owned(pod: dict, job: dict) -> bool:
        return (
            pod["metadata"]["labels"].get("batch.kubernetes.io/job-name") == job["metadata"]["name"]
        )

    def create_service(self, body: dict) -> tuple[int, dict]:
        return self.create_object(self.services, "services", body)

    def create_object(self, store: dict, plural: str, body: dict) -> tuple[int, dict]:
        with self.cond:
            name = body["metadata"]["name"]
            if name in store:
                return 409, status(409, "AlreadyExists", f'{plural} "{name}" already exists')
            obj = copy.deepcopy(body)
            obj["metadata"].update(uid=str(uuid.uuid4()), creationTimestamp=now())
            self._stamp(obj)
            store[name] = obj
            return 201, copy.deepcopy(obj)

    def delete_object(self, store: dict, plural: str, name: str) -> tuple[int, dict]:
        with self.cond:
            if store.pop(name, None) is None:
                return 404, status(404, "NotFound", f'{plural} "{name}" not found')
            return 200, {"kind": "Status", "apiVersion": "v1", "status": "Success"}

    def add_event(self, job_name: str, reason: str, message: str) -> None:
        """Record an Event on the Job, as the Job controller does (FailedCreate...)."""
        with self.cond:
            self.job_events.setdefault(job_name, []).append(
                {
                    "apiVersion": "v1",
                    "kind": "Event",
                    "metadata": {"name": f"{job_name}.{uuid.uuid4().hex[:8]}"},
                    "involvedObject": {"kind": "Job", "name": job_name},
                    "reason": reason,
                    "message": message,
                    "type": "Warning",
                    "lastTimestamp": now(),
                }
            )

    def list_events(self, selector: str) -> dict:
        wanted = dict(part.split("=", 1) for part in selector.split(",") if part)
        with self.cond:
            items = [
                copy.deepcopy(e)
                for events in self.job_events.values()
                for e in events
                if all(
                    e["involvedObject"].get(k.removeprefix("involvedObject.")) == v
                    for k, v in wanted.items()
                )
            ]
        return {"kind": "EventList", "apiVersion": "v1", "metadata": {}, "items": items}

    def list_pods(self, selector: str) -> dict:
        wanted = dict(part.split("=", 1) for part in selector.split(",") if part)
        with self.cond:
            items = [
                copy.deepcopy(p)
                for p in self.pods.values()
                if all(p["metadata"]["labels"].get(k) == v for k, v in wanted.items())
            ]
            return {
                "kind": "PodList",
                "apiVersion": "v1",
                "metadata": {"resourceVersion": str(next(self._rv))},
                "items": items,
            }

    # -- the Job controller's and kubelet's side, driven by tests ----------------------
    def add_pod(self, job: dict, index: int, phase: str = "Running") -> str:
        """Create pod ``index`` of ``job`` in ``phase``, as the Job controller would."""
        with self.cond:
            name = job["metadata"]["name"]
            pod_name = f"{name}-{index}-{uuid.uuid4().hex[:5]}"
            template = copy.deepcopy(job["spec"]["template"])
            labels = dict(template["metadata"].get("labels") or {})
            labels.update({"batch.kubernetes.io/job-name": name, INDEX: str(index)})
            annotations = dict(template["metadata"].get("annotations") or {})
            annotations[INDEX] = str(index)
            spec = template["spec"]
            spec["hostname"] = f"{name}-{index}"
            self.pods[pod_name] = {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {
                    "name": pod_name,
                    "namespace": job["metadata"]["namespace"],
                    "uid": str(uuid.uuid4()),
                    "creationTimestamp": now(),
                    "labels": labels,
                    "annotations": annotations,
                    "ownerReferences": [
                        {
                            "apiVersion": "batch/v1",
                            "kind": "Job",
                            "name": name,
                            "uid": job["metadata"]["uid"],
                            "controller": True,
                        }
                    ],
                },
                "spec": spec,
                "status": {"phase": phase, "conditions": []},
            }
            self._stamp(self.pods[pod_name])
            self.logs[pod_name] = []
            self.log_closed[pod_name] = False
            self.log_cuts[pod_name] = 0
            self.cond.notify_all()
            return pod_name

    def set_pod_status(self, pod: str, **fields) -> None:
        """Replace fields of the pod's status (phase, conditions, containerStatuses)."""
        with self.cond:
            self.pods[pod]["status"].update(fields)
            self._stamp(self.pods[pod])
            self.cond.notify_all()

    def update_job(self, name: str, change: Callable[[dict], None]) -> None:
        """Change the Job (e.g. Kueue unsuspending it) and tell the watches."""
        with self.cond:
            change(self.jobs[name])
            self._job_event("MODIFIED", self.jobs[name])

    def write_log(self, pod: str, text: str) -> None:
        """The container writes ``text``; each line gets its own timestamp."""
        with self.cond:
            for line in text.encode().splitlines(keepends=True):
                self._last_ns = max(time.time_ns(), self._last_ns + 1)
                self.logs[pod].append((self._last_ns, line))
            self.cond.notify_all()

    def cut_log(self, pod: str) -> None:
        """End the pod's open log streams while it keeps running (a dropped connection)."""
        with self.cond:
            self.log_cuts[pod] += 1
            self.cond.notify_all()

    def log_text(self, pod: str) -> str:
        """Everything the pod wrote."""
        with self.cond:
            return b"".join(line for _, line in self.logs[pod]).decode()

    def end_pod(self, pod: str, exit_code: int, disrupted: bool = False) -> None:
        """The trainer container exits with ``exit_code``; ``disrupted`` marks a preemption."""
        with self.cond:
            status_ = self.pods[pod]["status"]
            status_["phase"] = "Succeeded" if exit_code == 0 else "Failed"
            if disrupted:
                status_["conditions"].append(
                    {
                        "type": "DisruptionTarget",
                        "status": "True",
                        "reason": "PreemptionByScheduler",
                    }
                )
            status_["containerStatuses"] = [
                {
                    "name": "trainer",
                    "ready": False,
                    "restartCount": 0,
                    "image": "audioflow:test",
                    "imageID": "",
                    "state": {"terminated": {"exitCode": exit_code, "reason": "Error"}},
                }
            ]
            self._stamp(self.pods[pod])
            self.log_closed[pod] = True
            self.cond.notify_all()

    def finish_job(self, name: str, kind: str, reason: str = "", message: str = "") -> None:
        """Add the terminal condition ``kind`` (Complete or Failed) to the Job."""
        with self.cond:
            job = self.jobs[name]
            cond = {
                "type": kind,
                "status": "True",
                "reason": reason or ("Completed" if kind == "Complete" else "BackoffLimitExceeded"),
                "message": message,
                "lastProbeTime": now(),
                "lastTransitionTime": now(),
            }
            job["status"]["conditions"] = [*job["status"].get("conditions", []), cond]
            job["status"]["succeeded" if kind == "Complete" else "failed"] = 1
            self._job_event("MODIFIED", job)

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 20) -> bool:
        with self.cond:
            return self.cond.wait_for(predicate, timeout)

    def pods_of(self, job_name: str) -> list[str]:
        with self.cond:
            return [
                name
                for name, pod in self.pods.items()
                if pod["metadata"]["labels"].get("batch.kubernetes.io/job-name") == job_name
            ]


class JobController:
    """The Job controller for one Indexed Job, applying the Job's own failure rules.

    ``start()`` creates a pod per index; each ``reconcile()`` handles the pods that
    ended since: the first matching rule of ``spec.podFailurePolicy`` decides (Ignore:
    replaced, not counted; FailJob: the Job fails; Count or no match: counted), a failure
    count above ``spec.backoffLimit`` fails the Job (reason BackoffLimitExceeded), and
    the Job completes when every index has succeeded. Failed pods are replaced, as with
    ``podReplacementPolicy: Failed``, only once they are terminal.
    """

    def __init__(self, cluster: FakeCluster, job: dict):
        self.cluster, self.job = cluster, job
        self.name = job["metadata"]["name"]
        self.current: dict[int, str] = {}
        self.handled: set[str] = set()
        self.failed = 0
        self.succeeded: set[int] = set()

    def start(self) -> list[str]:
        for index in range(self.job["spec"]["completions"]):
            self.current[index] = self.cluster.add_pod(self.job, index)
        return self.pods()

    def pods(self) -> list[str]:
        """The current pod of each index, by index."""
        return [self.current[i] for i in sorted(self.current)]

    def _action(self, pod: dict) -> str:
        rules = (self.job["spec"].get("podFailurePolicy") or {}).get("rules") or []
        status_ = pod["status"]
        codes = [
            s["state"]["terminated"].get("exitCode")
            for s in status_.get("containerStatuses") or []
            if (s.get("state") or {}).get("terminated")
        ]
        conditions = {(c["type"], c["status"]) for c in status_.get("conditions") or []}
        for rule in rules:
            if "onExitCodes" in rule:
                values = set(rule["onExitCodes"]["values"])
                inside = any(code in values for code in codes if code != 0)
                if inside == (rule["onExitCodes"]["operator"] == "In"):
                    return rule["action"]
            for cond in rule.get("onPodConditions") or []:
                if (cond["type"], cond.get("status", "True")) in conditions:
                    return rule["action"]
        return "Count"

    def reconcile(self) -> str | None:
        """Handle the pods that ended; returns the Job's terminal condition, if reached."""
        c = self.cluster
        for index, pod_name in sorted(self.current.items()):
            with c.cond:
                pod = copy.deepcopy(c.pods.get(pod_name))
            if pod is None or pod_name in self.handled:
                continue
            phase = pod["status"]["phase"]
            if phase not in ("Succeeded", "Failed"):
                continue
            self.handled.add(pod_name)
            if phase == "Succeeded":
                self.succeeded.add(index)
                continue
            action = self._action(pod)
            if action == "FailJob":
                message = f"Pod {pod_name} matched a FailJob rule"
                return self._fail("PodFailurePolicy", message)
            if action != "Ignore":
                self.failed += 1
                if self.failed > self.job["spec"]["backoffLimit"]:
                    return self._fail("BackoffLimitExceeded", "")
            self.current[index] = c.add_pod(self.job, index)
        if len(self.succeeded) == len(self.current):
            c.finish_job(self.name, "Complete")
            return "Complete"
        return None

    def _fail(self, reason: str, message: str) -> str:
        """Fail the Job; its pods still active are deleted, as the Job controller does."""
        c = self.cluster
        with c.cond:
            for pod_name in self.current.values():
                pod = c.pods.get(pod_name)
                if pod is not None and pod["status"]["phase"] not in ("Succeeded", "Failed"):
                    c.pods.pop(pod_name)
                    c.log_closed[pod_name] = True
            c.cond.notify_all()
        c.finish_job(self.name, "Failed", reason, message)
        return "Failed"
