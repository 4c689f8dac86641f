"""The Kubernetes launcher: a stage runs as an Indexed Job with torchrun on every node.

``snakemake --profile k8s`` selects it (``config: {launcher: kubernetes}``). For each rule
job it renders the Job, its headless Service and NetworkPolicy
(:mod:`audioflow.launch.manifests`), submits them with the official client (the Job
owning the other two), streams the rank-0 pod's output into the rule's log and returns
the Job's outcome as the rule's exit status. A Job of the same name still running (the
controller was restarted) is re-attached to instead of submitted twice. Pods that do not
all start within the start deadline end the rule with the reason, and the Job is deleted.
SIGINT/SIGTERM (Ctrl-C on snakemake reaches every launcher) delete the Job and its pods.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .base import CONFIG_ERROR_EXIT_CODE, JobSpec, Launcher
from .k8s_logs import LogPositions, RankZeroLogs, positions_path
from .k8s_settings import KubernetesSettings, load_settings
from .k8s_watch import (
    READ_TIMEOUT_SECONDS,
    StartDeadline,
    StartTimeout,
    container_exit_code,
    job_condition,
    job_events,
    job_pods,
    read_job,
    read_json,
    real_exit_code,
    request_timeout,
    wait_for_job,
)
from .manifests import job_name, render_dependents, render_job

logger = logging.getLogger(__name__)

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


def exit_status(job: dict | None, failed_exit_code: int | None) -> int:
    """The rule's exit status for a finished Job.

    Args:
        job: the Job in its terminal state, or None if it was deleted before it finished.
        failed_exit_code: the real exit code of the failed trainer (rank 0's, else the
            first failing rank's; see ``k8s_watch.real_exit_code``), if known.

    Returns:
        0 if the Job completed; ``CONFIG_ERROR_EXIT_CODE`` if the podFailurePolicy failed
        it (a configuration error: retrying cannot help); else the failed exit code, or 1.
    """
    cond = job_condition(job) if job else None
    if cond is not None and cond["type"] == "Complete":
        return 0
    if cond is not None and cond.get("reason") == "PodFailurePolicy":
        return CONFIG_ERROR_EXIT_CODE
    return failed_exit_code if failed_exit_code else 1


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
        read_timeout: silence after which any request or stream is abandoned and reopened
            (a watch may first take its ``watch_seconds``).
        log_drain_seconds: how long the logs of finished pods may take once the Job ended.
        delete_wait_seconds: how long a Job being replaced may take to go away.
    """

    def __init__(
        self,
        settings: KubernetesSettings | None = None,
        api_client=None,
        poll_seconds: float = 2.0,
        watch_seconds: int = 60,
        read_timeout: float = READ_TIMEOUT_SECONDS,
        log_drain_seconds: float = LOG_DRAIN_SECONDS,
        delete_wait_seconds: float = DELETE_WAIT_SECONDS,
    ):
        self.settings = settings
        self.api_client = api_client
        self.poll_seconds = poll_seconds
        self.watch_seconds = watch_seconds
        self.read_timeout = read_timeout
        self.log_drain_seconds = log_drain_seconds
        self.delete_wait_seconds = delete_wait_seconds

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
        run = _Run(job, settings, api_client, log, self)
        try:
            with _signals_raise_cancelled():
                return run.follow()
        finally:
            run.close()


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
        self.closed = False
        self.timeout = request_timeout(opts.read_timeout)

    def say(self, message: str) -> None:
        self.write(f"[audioflow] {message}\n".encode())
        if self.log is not sys.stdout.buffer:
            print(f"audioflow launch: {message}", file=sys.stderr, flush=True)

    def write(self, data: bytes) -> None:
        with self.lock:
            if self.closed:
                return  # a log thread outliving the run never writes to a closed file
            self.log.write(data)
            self.log.flush()

    def close(self) -> None:
        with self.lock:
            self.closed = True
            if self.log is not sys.stdout.buffer:
                self.log.close()

    def follow(self) -> int:
        from kubernetes.client.exceptions import ApiException
        from urllib3.exceptions import HTTPError

        logs = None
        try:
            submitted = self.submit_or_attach()
            path = positions_path(Path(self.job.log_path)) if self.job.log_path else None
            logs = RankZeroLogs(
                self.core,
                self.namespace,
                self.name,
                self.write,
                self.opts.poll_seconds,
                self.opts.read_timeout,
                LogPositions(path),
            )
            logs.start()
            deadline = StartDeadline(
                self.settings.start_timeout,
                self.job.nodes,
                lambda: job_events(self.core, self.namespace, self.name, self.opts.read_timeout),
            )
            final = wait_for_job(
                self.batch,
                self.namespace,
                self.name,
                submitted,
                self.opts.watch_seconds,
                self.opts.read_timeout,
                on_tick=lambda job: self.check_start(deadline, job),
            )
            self.drain(logs)
            if final is None:
                self.say(f"job {self.name} was deleted before it finished")
                return 1
            status = exit_status(final, real_exit_code(self.pods()))
            cond = job_condition(final) or {}
            detail = f": {cond.get('reason')} {cond.get('message', '')}".rstrip()
            self.say(f"job {self.name} {cond.get('type', 'ended')}{detail} (exit {status})")
            return status
        except StartTimeout as exc:
            self.drain(logs)
            self.say(f"job {self.name}: {exc}; deleting the job")
            self.delete(wait=False)
            return exc.exit_code
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
        except (ContestedName, TimeoutError) as exc:
            self.say(str(exc))
            return 1
        finally:
            if logs is not None:
                logs.stop()  # never left running into the interpreter's shutdown

    def check_start(self, deadline: StartDeadline, job: dict) -> None:
        """Apply the start deadline; a failed pod listing only postpones it."""
        from kubernetes.client.exceptions import ApiException
        from urllib3.exceptions import HTTPError

        try:
            pods = self.pods()
        except (ApiException, HTTPError) as exc:
            logger.info("pods of %s unreadable: %s", self.name, exc)
            return
        deadline.check(job, pods)

    def pods(self) -> list[dict]:
        return job_pods(self.core, self.namespace, self.name, self.opts.read_timeout)

    def drain(self, logs: RankZeroLogs | None) -> None:
        """Let the log thread write what the finished pods left, within the drain time."""
        if logs is None:
            return
        incomplete = logs.finish(self.opts.log_drain_seconds)
        logs.stop()  # a pod still streaming past the drain time: nothing more is written
        if incomplete:
            pods = ", ".join(incomplete)
            self.say(f"logs of pod(s) {pods} may be incomplete: `kubectl logs` shows the rest")
        logs.positions.save()

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
        self.ensure_dependents(job["metadata"]["uid"])
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
                    self.batch.create_namespaced_job(
                        self.namespace, body, _preload_content=False, _request_timeout=self.timeout
                    )
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

    def ensure_dependents(self, uid: str) -> None:
        """Create the Service and NetworkPolicy owned by the Job ``uid``.

        One of that name owned by this Job is kept (a re-attach, a racing controller);
        one with another owner, or none (left by an earlier Job, or applied by hand), is
        replaced: adopting it would leave the pods without DNS once its owner's garbage
        collection removes it.
        """
        from kubernetes.client.exceptions import ApiException

        for obj in render_dependents(self.job, self.settings, owner_uid=uid):
            create, read, remove = self._api_for(obj["kind"])
            for _ in range(CREATE_ATTEMPTS):
                try:
                    read_json(
                        create(
                            self.namespace,
                            obj,
                            _preload_content=False,
                            _request_timeout=self.timeout,
                        )
                    )
                    break
                except ApiException as exc:
                    if exc.status != 409:
                        raise
                try:
                    existing = read_json(
                        read(
                            self.name,
                            self.namespace,
                            _preload_content=False,
                            _request_timeout=self.timeout,
                        )
                    )
                except ApiException as exc:
                    if exc.status == 404:
                        continue  # gone meanwhile: create it again
                    raise
                owners = existing["metadata"].get("ownerReferences") or []
                if any(o.get("uid") == uid for o in owners):
                    break
                self.say(f"{obj['kind']} {self.name} belongs to another job: replacing it")
                try:
                    read_json(
                        remove(
                            self.name,
                            self.namespace,
                            _preload_content=False,
                            _request_timeout=self.timeout,
                        )
                    )
                except ApiException as exc:
                    if exc.status != 404:
                        raise
            else:
                raise ContestedName(
                    f"{obj['kind']} {self.name} keeps coming back with another owner; "
                    "is another controller running this stage?"
                )

    def _api_for(self, kind: str):
        """(create, read, delete) of the API holding ``kind``."""
        from kubernetes import client

        if kind == "Service":
            api = self.core
            return (
                api.create_namespaced_service,
                api.read_namespaced_service,
                api.delete_namespaced_service,
            )
        api = client.NetworkingV1Api(self.batch.api_client)
        return (
            api.create_namespaced_network_policy,
            api.read_namespaced_network_policy,
            api.delete_namespaced_network_policy,
        )

    def delete(self, wait: bool) -> None:
        """Delete the Job, its pods and (by owner reference) its Service."""
        from kubernetes.client.exceptions import ApiException

        try:
            read_json(
                self.batch.delete_namespaced_job(
                    self.name,
                    self.namespace,
                    # Foreground: the Job stays visible (terminating) until its pods are gone.
                    propagation_policy="Foreground",
                    _preload_content=False,
                    _request_timeout=self.timeout,
                )
            )
        except ApiException as exc:
            if exc.status != 404:
                raise
        waited = self.opts.delete_wait_seconds
        deadline = time.monotonic() + waited
        while wait and read_job(self.batch, self.namespace, self.name) is not None:
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"job {self.name} still exists {waited:.0f}s after its deletion; "
                    f"see `kubectl -n {self.namespace} describe job {self.name}` (finalizers?)"
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
