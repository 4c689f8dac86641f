"""The Kubernetes launcher: a stage runs as an Indexed Job with torchrun on every node.

``snakemake --profile k8s`` selects it (``config: {launcher: kubernetes}``). For each rule
job it renders the Job and its headless Service (:mod:`audioflow.launch.manifests`),
submits them with the official client, streams the rank-0 pod's output into the rule's
log and returns the Job's outcome as the rule's exit status. A Job of the same name still
running (the controller was restarted) is re-attached to instead of submitted twice.
SIGINT/SIGTERM (Ctrl-C on snakemake reaches every launcher) delete the Job and its pods.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .base import CONFIG_ERROR_EXIT_CODE, JobSpec, Launcher
from .k8s_settings import KubernetesSettings, load_settings
from .k8s_watch import (
    RankZeroLogs,
    container_exit_code,
    job_condition,
    read_job,
    read_json,
    wait_for_job,
)
from .manifests import job_name, render_job, render_service

# The controller's cancel wins over a Job stuck in deletion after this long.
DELETE_WAIT_SECONDS = 300
# Creates answered 409 for a Job that is gone by the time it is read, before giving up.
CREATE_ATTEMPTS = 3
LOG_DRAIN_SECONDS = 30


class ContestedName(RuntimeError):
    """The Job's name keeps being taken and freed by someone else."""


class Cancelled(Exception):
    """The launcher received SIGINT or SIGTERM."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def new_api_client():
    """An API client from ``$KUBECONFIG``/``~/.kube/config``, else the in-cluster account.

    Raises:
        kubernetes.config.ConfigException: no credentials found.
    """
    from kubernetes import client, config

    if os.environ.get("KUBECONFIG") or not os.environ.get("KUBERNETES_SERVICE_HOST"):
        config.load_kube_config()
    else:
        config.load_incluster_config()
    return client.ApiClient()


def exit_status(job: dict | None, rank0_exit_code: int | None) -> int:
    """The rule's exit status for a finished Job.

    Args:
        job: the Job in its terminal state, or None if it was deleted before it finished.
        rank0_exit_code: the last exit code of the rank-0 trainer container, if known.

    Returns:
        0 if the Job completed; ``CONFIG_ERROR_EXIT_CODE`` if the podFailurePolicy failed
        it (a configuration error: retrying cannot help); else the rank-0 exit code, or 1.
    """
    cond = job_condition(job) if job else None
    if cond is not None and cond["type"] == "Complete":
        return 0
    if cond is not None and cond.get("reason") == "PodFailurePolicy":
        return CONFIG_ERROR_EXIT_CODE
    return rank0_exit_code if rank0_exit_code else 1


def api_error(exc) -> str:
    """One line from an ApiException: status, reason and the server's message."""
    message = ""
    try:
        message = json.loads(exc.body or "{}").get("message", "")
    except (ValueError, AttributeError):
        pass
    return f"{exc.status} {exc.reason}" + (f": {message}" if message else "")


class KubernetesLauncher(Launcher):
    """Run jobs as Kubernetes Indexed Jobs.

    Args:
        settings: cluster settings; None reads the selected team/cluster config.
        api_client: a ``kubernetes.client.ApiClient``; None loads kubeconfig or in-cluster.
        poll_seconds: how often pods are listed while waiting for the rank-0 pod.
        watch_seconds: length of one watch request on the Job before it is reopened.
    """

    def __init__(
        self,
        settings: KubernetesSettings | None = None,
        api_client=None,
        poll_seconds: float = 2.0,
        watch_seconds: int = 60,
    ):
        self.settings = settings
        self.api_client = api_client
        self.poll_seconds = poll_seconds
        self.watch_seconds = watch_seconds

    def launch(self, job: JobSpec) -> int:
        """Submit (or re-attach to) the job's Job, follow it, return its exit status."""
        try:
            settings = self.settings or load_settings()
        except Exception as exc:  # ConfigError or ValueError: both are the user's to fix
            print(f"audioflow launch: {exc}", file=sys.stderr)
            return CONFIG_ERROR_EXIT_CODE
        try:
            api_client = self.api_client or new_api_client()
        except Exception as exc:  # noqa: BLE001 - kubernetes.config raises several types
            print(
                f"audioflow launch: no Kubernetes credentials ({exc}); set KUBECONFIG "
                "or run in a pod with a service account",
                file=sys.stderr,
            )
            return CONFIG_ERROR_EXIT_CODE
        log = _open_log(job.log_path)
        try:
            with _signals_raise_cancelled():
                return _Run(job, settings, api_client, log, self).follow()
        finally:
            if log is not sys.stdout.buffer:
                log.close()


class _Run:
    """One launch: the API handles, the log sink and the steps of the control flow."""

    def __init__(self, job: JobSpec, settings: KubernetesSettings, api_client, log, opts):
        from kubernetes import client

        self.job, self.settings, self.log, self.opts = job, settings, log, opts
        self.batch = client.BatchV1Api(api_client)
        self.core = client.CoreV1Api(api_client)
        self.name = job_name(job.name)
        self.namespace = settings.namespace
        self.lock = threading.Lock()

    def say(self, message: str) -> None:
        line = f"[audioflow] {message}\n".encode()
        with self.lock:
            self.log.write(line)
            self.log.flush()
        if self.log is not sys.stdout.buffer:
            print(f"audioflow launch: {message}", file=sys.stderr, flush=True)

    def write(self, data: bytes) -> None:
        with self.lock:
            self.log.write(data)
            self.log.flush()

    def follow(self) -> int:
        from kubernetes.client.exceptions import ApiException
        from urllib3.exceptions import HTTPError

        try:
            submitted = self.submit_or_attach()
            logs = RankZeroLogs(
                self.core, self.namespace, self.name, self.write, self.opts.poll_seconds
            )
            logs.start()
            final = wait_for_job(
                self.batch, self.namespace, self.name, submitted, self.opts.watch_seconds
            )
            logs.finish(LOG_DRAIN_SECONDS)
            if final is None:
                self.say(f"job {self.name} was deleted before it finished")
                return 1
            status = exit_status(final, logs.last_exit_code)
            cond = job_condition(final) or {}
            detail = f": {cond.get('reason')} {cond.get('message', '')}".rstrip()
            self.say(f"job {self.name} {cond.get('type', 'ended')}{detail} (exit {status})")
            return status
        except Cancelled as exc:
            # A second signal must not interrupt the deletion that stops the pods
            # (Cancelled is only ever raised in the main thread, where handlers live).
            for sig in (signal.SIGINT, signal.SIGTERM):
                signal.signal(sig, signal.SIG_IGN)
            self.say(f"{exc}: deleting job {self.name} and its pods")
            self.delete(wait=False)
            return 128 + exc.signum
        except ApiException as exc:
            self.say(f"Kubernetes API refused {self.name}: {api_error(exc)}")
            # Forbidden (RBAC) or invalid (rejected manifest) will not pass on a retry.
            return CONFIG_ERROR_EXIT_CODE if exc.status in (401, 403, 404, 422) else 1
        except HTTPError as exc:
            self.say(f"Kubernetes API unreachable while following {self.name}: {exc}")
            return 1
        except ContestedName as exc:
            self.say(str(exc))
            return 1

    def submit_or_attach(self) -> dict:
        """Create the Job and its Service, or re-attach to a Job of that name that runs."""

        existing = read_job(self.batch, self.namespace, self.name)
        if existing is not None and (
            existing["metadata"].get("deletionTimestamp") or job_condition(existing)
        ):
            # A finished Job holds an old outcome: start afresh (the stage resumes from
            # its checkpoint); one being deleted must be gone before its name is reused.
            state = (job_condition(existing) or {}).get("type", "being deleted")
            self.say(f"job {self.name} exists ({state}): replacing it")
            self.delete(wait=True)
            existing = None
        if existing is not None:
            self.say(f"re-attaching to running job {self.name} in {self.namespace}")
            job = existing
        else:
            job = self.create()
        self.ensure_service(job["metadata"]["uid"])
        return job

    def create(self) -> dict:
        """Create the Job; on a name clash, attach to the Job that won, or try again if it
        is already gone (another controller created and deleted it in between)."""
        from kubernetes import client
        from kubernetes.client.exceptions import ApiException

        body = client.V1Job.from_dict(render_job(self.job, self.settings))
        for _ in range(CREATE_ATTEMPTS):
            try:
                job = read_json(
                    self.batch.create_namespaced_job(self.namespace, body, _preload_content=False)
                )
            except ApiException as exc:
                if exc.status != 409:
                    raise
                job = read_job(self.batch, self.namespace, self.name)
                if job is not None:
                    self.say(f"job {self.name} appeared meanwhile: re-attaching")
                    return job
                continue
            self.say(
                f"submitted job {self.name} to {self.namespace}: "
                f"{self.job.nodes} node(s) x {self.job.gpus_per_node} GPU(s)"
            )
            return job
        raise ContestedName(
            f"job {self.name}: the API answered 'already exists' {CREATE_ATTEMPTS} times but "
            "no such job could be read; is another controller creating and deleting it?"
        )

    def ensure_service(self, uid: str) -> None:
        from kubernetes import client
        from kubernetes.client.exceptions import ApiException

        body = client.V1Service.from_dict(render_service(self.job, self.settings, owner_uid=uid))
        try:
            self.core.create_namespaced_service(
                self.namespace, body, _preload_content=False
            ).release_conn()
        except ApiException as exc:
            if exc.status != 409:  # already there: a re-attach, or a racing controller
                raise

    def delete(self, wait: bool) -> None:
        """Delete the Job, its pods and (by owner reference) its Service."""
        from kubernetes.client.exceptions import ApiException

        try:
            self.batch.delete_namespaced_job(
                self.name,
                self.namespace,
                # Foreground: the Job stays visible (terminating) until its pods are gone.
                propagation_policy="Foreground",
                _preload_content=False,
            ).release_conn()
        except ApiException as exc:
            if exc.status != 404:
                raise
        deadline = time.monotonic() + DELETE_WAIT_SECONDS
        while wait and read_job(self.batch, self.namespace, self.name) is not None:
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"job {self.name} still exists {DELETE_WAIT_SECONDS}s after delete"
                )
            time.sleep(self.opts.poll_seconds)


def _open_log(path: Path | None):
    if path is None:
        return sys.stdout.buffer
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return open(path, "ab")  # noqa: SIM115 - closed by the launcher


@contextmanager
def _signals_raise_cancelled() -> Iterator[None]:
    """Turn SIGINT/SIGTERM into :class:`Cancelled` while the launcher follows a Job."""
    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread may set handlers; its owner handles signals
        return

    def cancel(signum, _frame):
        raise Cancelled(signum)

    previous = {s: signal.signal(s, cancel) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


__all__ = ["KubernetesLauncher", "exit_status", "new_api_client", "container_exit_code"]
