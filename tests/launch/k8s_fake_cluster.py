"""The state behind the Kubernetes API test double: Jobs, Services, pods and their logs.

Tests play the Job controller and the kubelet through :class:`FakeCluster`'s methods
(``add_pod``, ``set_pod_status``, ``write_log``, ``end_pod``, ``finish_job``); the HTTP
side (``k8s_api_double.py``) serves this state as the API server's REST paths and JSON.
"""

from __future__ import annotations

import copy
import itertools
import threading
import uuid
from collections.abc import Callable
from datetime import UTC, datetime

INDEX = "batch.kubernetes.io/job-completion-index"


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


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
        self.logs: dict[str, bytearray] = {}
        self.log_closed: dict[str, bool] = {}
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
            for svc_name, svc in list(self.services.items()):
                owners = svc["metadata"].get("ownerReferences") or []
                if any(o.get("uid") == uid for o in owners):
                    self.services.pop(svc_name)
            self._job_event("DELETED", job)

    @staticmethod
    def _owned(pod: dict, job: dict) -> bool:
        return (
            pod["metadata"]["labels"].get("batch.kubernetes.io/job-name") == job["metadata"]["name"]
        )

    def create_service(self, body: dict) -> tuple[int, dict]:
        with self.cond:
            name = body["metadata"]["name"]
            if name in self.services:
                return 409, status(409, "AlreadyExists", f'services "{name}" already exists')
            svc = copy.deepcopy(body)
            svc["metadata"].update(uid=str(uuid.uuid4()), creationTimestamp=now())
            self._stamp(svc)
            self.services[name] = svc
            return 201, copy.deepcopy(svc)

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
            self.logs[pod_name] = bytearray()
            self.log_closed[pod_name] = False
            self.cond.notify_all()
            return pod_name

    def set_pod_status(self, pod: str, **fields) -> None:
        """Replace fields of the pod's status (phase, conditions, containerStatuses)."""
        with self.cond:
            self.pods[pod]["status"].update(fields)
            self._stamp(self.pods[pod])
            self.cond.notify_all()

    def write_log(self, pod: str, text: str) -> None:
        with self.cond:
            self.logs[pod].extend(text.encode())
            self.cond.notify_all()

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
