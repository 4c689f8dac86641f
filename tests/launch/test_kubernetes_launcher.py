"""The Kubernetes launcher's control flow against a local HTTP test double of the API.

No Kubernetes API server can be installed on the machines these tests run on, so the
launcher talks, through the official ``kubernetes`` client, to ``KubernetesAPIDouble``:
an HTTP server on 127.0.0.1 serving the real REST paths and JSON (jobs with watch
streaming, services, pods by label selector, pod logs with follow). Each test plays the
Job controller and kubelet in a scenario and checks what the launcher did: what it
submitted or deleted, what reached the rule's log, and the exit status it returned.
Cancellation is tested on a real ``audioflow launch`` process receiving SIGTERM.
"""

from __future__ import annotations

import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest
from kubernetes import client

from audioflow.launch.base import CONFIG_ERROR_EXIT_CODE, JobSpec
from audioflow.launch.k8s_settings import KubernetesSettings
from audioflow.launch.kubernetes import KubernetesLauncher
from audioflow.launch.manifests import render_job

from .k8s_api_double import KubernetesAPIDouble

pytestmark = pytest.mark.timeout(60)

NS = "audioflow"
SETTINGS = KubernetesSettings(namespace=NS, image="audioflow:test", pvc="shared", mount_path="/mnt")


def make_job(tmp_path: Path, nodes: int = 1, name: str = "af-1a2b3c4d-train-3") -> JobSpec:
    return JobSpec(
        name=name,
        args=["run", "solver=compression/debug", "--stage", "train", "--epoch", "3"],
        nodes=nodes,
        nproc_per_node=2,
        gpus_per_node=2,
        log_path=tmp_path / "logs" / "train_3.log",
        labels={"sig": "1a2b3c4d", "stage": "train", "epoch": "3"},
    )


def launcher(api: KubernetesAPIDouble) -> KubernetesLauncher:
    api_client = client.ApiClient(client.Configuration(host=api.url))
    return KubernetesLauncher(SETTINGS, api_client, poll_seconds=0.05, watch_seconds=2)


def requests(api: KubernetesAPIDouble, method: str, fragment: str) -> list:
    return [r for r in api.cluster.requests if r[0] == method and fragment in r[1]]


def test_submit_stream_logs_and_succeed(tmp_path):
    streamed_live = []

    def scenario(cluster, job):
        name = job["metadata"]["name"]
        pods = [cluster.add_pod(job, i) for i in range(2)]
        cluster.write_log(pods[0], "epoch 3: loss 0.5\n")
        cluster.write_log(pods[1], "node 1 output stays out of the rule log\n")
        # The line must reach the rule's log while the pod still runs, not at the end.
        deadline = time.monotonic() + 10
        while "loss 0.5" not in _read(job_spec.log_path) and time.monotonic() < deadline:
            time.sleep(0.02)
        streamed_live.append("loss 0.5" in _read(job_spec.log_path))
        cluster.write_log(pods[0], "epoch 3 done\n")
        for pod in pods:
            cluster.end_pod(pod, 0)
        cluster.finish_job(name, "Complete")

    with KubernetesAPIDouble() as api:
        api.cluster.on_job_created = scenario
        job = job_spec = make_job(tmp_path, nodes=2)
        assert launcher(api).launch(job) == 0
        assert streamed_live == [True]
        posted = requests(api, "POST", f"/apis/batch/v1/namespaces/{NS}/jobs")
        assert len(posted) == 1
        submitted = next(iter(api.cluster.jobs.values()))
        assert submitted["spec"] == render_job(job, SETTINGS)["spec"]
        service = api.cluster.services["af-1a2b3c4d-train-3"]
        # The Service is owned by the Job, so deleting the Job removes it.
        assert service["metadata"]["ownerReferences"][0]["uid"] == submitted["metadata"]["uid"]
        assert requests(api, "GET", "/jobs")[-1][2].get("watch") == "true"
    log = job.log_path.read_text()
    assert "epoch 3: loss 0.5\n" in log and "epoch 3 done\n" in log
    assert log.index("loss 0.5") < log.index("epoch 3 done")
    assert "node 1 output" not in log
    assert "Complete" in log


def test_failure_returns_rank0_exit_code(tmp_path):
    def scenario(cluster, job):
        pod = cluster.add_pod(job, 0)
        cluster.write_log(pod, "Traceback: CUDA out of memory\n")
        cluster.end_pod(pod, 3)
        cluster.finish_job(job["metadata"]["name"], "Failed", "BackoffLimitExceeded")

    with KubernetesAPIDouble() as api:
        api.cluster.on_job_created = scenario
        job = make_job(tmp_path)
        assert launcher(api).launch(job) == 3
    log = job.log_path.read_text()
    assert "CUDA out of memory" in log and "BackoffLimitExceeded" in log


def test_config_error_fails_fast_with_exit_2(tmp_path):
    def scenario(cluster, job):
        pod = cluster.add_pod(job, 0)
        cluster.write_log(pod, "optim.lr: not a number; fix the override\n")
        cluster.end_pod(pod, CONFIG_ERROR_EXIT_CODE)
        message = "Container trainer failed with exit code 2 matching FailJob rule at index 1"
        cluster.finish_job(job["metadata"]["name"], "Failed", "PodFailurePolicy", message)

    with KubernetesAPIDouble() as api:
        api.cluster.on_job_created = scenario
        assert launcher(api).launch(make_job(tmp_path)) == CONFIG_ERROR_EXIT_CODE


def test_preempted_pod_is_replaced_and_both_attempts_are_logged(tmp_path):
    def scenario(cluster, job):
        first = cluster.add_pod(job, 0)
        cluster.write_log(first, "attempt one, epoch 3 at 40%\n")
        time.sleep(0.2)
        cluster.end_pod(first, 143, disrupted=True)  # preempted: DisruptionTarget, ignored
        time.sleep(0.2)
        second = cluster.add_pod(job, 0)
        cluster.write_log(second, "resumed from checkpoint, epoch 3 done\n")
        cluster.end_pod(second, 0)
        cluster.finish_job(job["metadata"]["name"], "Complete")

    with KubernetesAPIDouble() as api:
        api.cluster.on_job_created = scenario
        job = make_job(tmp_path)
        assert launcher(api).launch(job) == 0
        assert len(requests(api, "POST", "/jobs")) == 1  # the Job replaced the pod, not us
    log = job.log_path.read_text()
    assert log.index("attempt one") < log.index("resumed from checkpoint")
    assert "(attempt 2)" in log


def test_pending_reason_reaches_the_log_once(tmp_path):
    def scenario(cluster, job):
        pod = cluster.add_pod(job, 0, phase="Pending")
        unschedulable = {
            "type": "PodScheduled",
            "status": "False",
            "reason": "Unschedulable",
            "message": "0/3 nodes are available: 3 Insufficient nvidia.com/gpu.",
        }
        cluster.set_pod_status(pod, conditions=[unschedulable])
        time.sleep(0.5)  # several polls of the pod list see the same reason
        cluster.set_pod_status(pod, phase="Running", conditions=[])
        cluster.write_log(pod, "started\n")
        cluster.end_pod(pod, 0)
        cluster.finish_job(job["metadata"]["name"], "Complete")

    with KubernetesAPIDouble() as api:
        api.cluster.on_job_created = scenario
        job = make_job(tmp_path)
        assert launcher(api).launch(job) == 0
    log = job.log_path.read_text()
    assert log.count("Insufficient nvidia.com/gpu") == 1
    assert log.index("is waiting: Unschedulable") < log.index("started")


def test_reattaches_to_a_running_job_instead_of_submitting(tmp_path):
    job = make_job(tmp_path)
    with KubernetesAPIDouble() as api:
        cluster = api.cluster
        cluster.create_job(render_job(job, SETTINGS))
        running = next(iter(cluster.jobs.values()))
        pod = cluster.add_pod(running, 0)
        cluster.write_log(pod, "written before the controller restarted\n")
        # The old watch position has expired: the launcher must re-read and watch again.
        cluster.expired_below = 10**9
        before = len(requests(api, "POST", "/jobs"))

        def finish_later():
            time.sleep(0.5)
            cluster.expired_below = 0
            cluster.write_log(pod, "written after\n")
            cluster.end_pod(pod, 0)
            cluster.finish_job(running["metadata"]["name"], "Complete")

        threading.Thread(target=finish_later, daemon=True).start()
        assert launcher(api).launch(job) == 0
        assert len(requests(api, "POST", "/jobs")) == before  # nothing submitted twice
    log = job.log_path.read_text()
    assert "re-attaching" in log
    assert "written before the controller restarted\n" in log and "written after\n" in log


def test_finished_job_of_same_name_is_replaced(tmp_path):
    job = make_job(tmp_path)

    def scenario(cluster, created):
        pod = cluster.add_pod(created, 0)
        cluster.end_pod(pod, 0)
        cluster.finish_job(created["metadata"]["name"], "Complete")

    with KubernetesAPIDouble() as api:
        cluster = api.cluster
        cluster.create_job(render_job(job, SETTINGS))
        old_uid = next(iter(cluster.jobs.values()))["metadata"]["uid"]
        cluster.finish_job("af-1a2b3c4d-train-3", "Failed", "BackoffLimitExceeded")
        cluster.on_job_created = scenario
        assert launcher(api).launch(job) == 0
        deletes = requests(api, "DELETE", "/jobs/af-1a2b3c4d-train-3")
        assert deletes and deletes[0][2]["propagationPolicy"] == "Foreground"
        assert next(iter(cluster.jobs.values()))["metadata"]["uid"] != old_uid


def test_job_deleted_by_someone_else_fails_the_rule(tmp_path):
    def scenario(cluster, job):
        pod = cluster.add_pod(job, 0)
        cluster.write_log(pod, "step 1\n")
        time.sleep(0.2)
        cluster.delete_job(job["metadata"]["name"], "Background")  # kubectl delete job

    with KubernetesAPIDouble() as api:
        api.cluster.on_job_created = scenario
        job = make_job(tmp_path)
        assert launcher(api).launch(job) == 1
    assert "was deleted before it finished" in job.log_path.read_text()


def test_name_taken_and_freed_by_another_controller_is_retried(tmp_path):
    def scenario(cluster, created):
        pod = cluster.add_pod(created, 0)
        cluster.end_pod(pod, 0)
        cluster.finish_job(created["metadata"]["name"], "Complete")

    with KubernetesAPIDouble() as api:
        api.cluster.vanishing_conflicts = 1  # 409, then the Job is not there to read
        api.cluster.on_job_created = scenario
        job = make_job(tmp_path)
        assert launcher(api).launch(job) == 0
        assert len(requests(api, "POST", "/jobs")) == 2
        assert len(api.cluster.jobs) == 1 and api.cluster.services
    assert f"submitted job {job.name}" in job.log_path.read_text()


def test_name_contested_forever_fails_with_one_clear_line(tmp_path):
    with KubernetesAPIDouble() as api:
        api.cluster.vanishing_conflicts = 10
        job = make_job(tmp_path)
        assert launcher(api).launch(job) == 1
        assert not api.cluster.jobs and not api.cluster.services
    log = job.log_path.read_text()
    assert "answered 'already exists' 3 times" in log and "Traceback" not in log


def test_missing_rbac_fails_with_one_clear_line_and_exit_2(tmp_path, capsys):
    with KubernetesAPIDouble() as api:
        api.cluster.forbidden = True
        job = make_job(tmp_path)
        assert launcher(api).launch(job) == CONFIG_ERROR_EXIT_CODE
        assert not api.cluster.jobs
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "403 Forbidden" in err and 'cannot get resource "jobs"' in err


def test_sigterm_deletes_the_job(tmp_path):
    """A real `audioflow launch` process gets SIGTERM while its Job runs."""

    def scenario(cluster, job):
        pod = cluster.add_pod(job, 0)
        cluster.write_log(pod, "training forever\n")

    job = make_job(tmp_path)
    with KubernetesAPIDouble() as api:
        api.cluster.on_job_created = scenario
        proc = api.start_launcher(
            tmp_path, job, NS, "audioflow:test", stderr=subprocess.PIPE, text=True
        )
        try:
            deadline = time.monotonic() + 30
            while "training forever" not in _read(job.log_path):
                assert proc.poll() is None, proc.stderr.read()
                assert time.monotonic() < deadline, "the launcher never streamed the pod's log"
                time.sleep(0.1)
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(20) == 128 + signal.SIGTERM
        finally:
            if proc.poll() is None:
                proc.kill()
        deletes = requests(api, "DELETE", f"/apis/batch/v1/namespaces/{NS}/jobs/{job.name}")
        assert len(deletes) == 1 and deletes[0][2]["propagationPolicy"] == "Foreground"
        assert api.cluster.wait_for(lambda: not api.cluster.jobs and not api.cluster.pods)
    assert "deleting job" in job.log_path.read_text()


def _read(path: Path) -> str:
    return path.read_text() if path.exists() else ""
