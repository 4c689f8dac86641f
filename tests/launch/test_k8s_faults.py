"""The Kubernetes launcher under the faults real clusters show, against the API double.

One test (at least) per way the launcher used to hang, lie or leak: pods that never start
(image pull errors, unschedulable pods, quota refusals), silent watches and log streams,
preemptions of a 2-node gang, log streams cut mid-run or hanging on a dead node, re-attach,
the real exit code of the failed rank, configuration errors, Services and NetworkPolicies
left by another Job, and a deletion that never completes.
"""

from __future__ import annotations

import signal
import subprocess
import threading
import time
from dataclasses import replace
from pathlib import Path

import pytest
import yaml
from kubernetes import client

from audioflow.launch.base import CONFIG_ERROR_EXIT_CODE, PEER_LOST_EXIT_CODE, JobSpec
from audioflow.launch.k8s_logs import positions_path
from audioflow.launch.k8s_settings import KubernetesSettings
from audioflow.launch.kubernetes import KubernetesLauncher
from audioflow.launch.manifests import render_job

from .k8s_api_double import KubernetesAPIDouble
from .k8s_fake_cluster import JobController

pytestmark = pytest.mark.timeout(90)

REPO = Path(__file__).resolve().parents[2]
NS = "audioflow"
START_TIMEOUT = 2
SETTINGS = KubernetesSettings(
    namespace=NS, image="audioflow:test", start_timeout=START_TIMEOUT, backoff_limit=2
)
NAME = "af-1a2b3c4d-train-3"


def make_job(tmp_path: Path, nodes: int = 1) -> JobSpec:
    return JobSpec(
        name=NAME,
        args=["run", "solver=compression/debug", "--stage", "train", "--epoch", "3"],
        nodes=nodes,
        log_path=tmp_path / "logs" / "train_3.log",
        labels={"sig": "1a2b3c4d", "stage": "train", "epoch": "3"},
    )


def launcher(api: KubernetesAPIDouble, settings=SETTINGS, **opts) -> KubernetesLauncher:
    api_client = client.ApiClient(client.Configuration(host=api.url))
    opts = {"poll_seconds": 0.05, "watch_seconds": 1, "read_timeout": 1, **opts}
    return KubernetesLauncher(settings, api_client, **opts)


def requests(api: KubernetesAPIDouble, method: str, fragment: str) -> list:
    return [r for r in api.cluster.requests if r[0] == method and fragment in r[1]]


def read(path: Path) -> str:
    return path.read_text() if path.exists() else ""


def wait_until(predicate, seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


# -- pods that never start ------------------------------------------------------------
IMAGE_PULL = {
    "name": "trainer",
    "ready": False,
    "restartCount": 0,
    "image": "ghcr.io/example/audioflow:0.9",
    "imageID": "",
    "state": {
        "waiting": {
            "reason": "ImagePullBackOff",
            "message": 'Back-off pulling image "ghcr.io/example/audioflow:0.9"',
        }
    },
}
UNSCHEDULABLE = {
    "type": "PodScheduled",
    "status": "False",
    "reason": "Unschedulable",
    "message": "0/3 nodes are available: 3 Insufficient nvidia.com/gpu.",
}


@pytest.mark.parametrize(
    "case,needle,code",
    [
        ("image", 'ImagePullBackOff: Back-off pulling image "ghcr.io/example/audioflow:0.9"', 2),
        ("unschedulable", "Unschedulable: 0/3 nodes are available: 3 Insufficient", 1),
        ("quota", "FailedCreate: pods", 1),
    ],
)
def test_pods_that_never_start_end_within_the_deadline_with_the_reason(
    tmp_path, capsys, case, needle, code
):
    def scenario(cluster, job):
        if case == "quota":  # no pod is ever created: only the Job's events say why
            message = f'pods "{NAME}-0-x" is forbidden: exceeded quota: gpus, requested: 2'
            cluster.add_event(NAME, "FailedCreate", message)
            return
        pod = cluster.add_pod(job, 0, phase="Pending")
        if case == "image":
            cluster.set_pod_status(pod, containerStatuses=[IMAGE_PULL])
        else:
            cluster.set_pod_status(pod, conditions=[UNSCHEDULABLE])

    with KubernetesAPIDouble() as api:
        api.cluster.on_job_created = scenario
        job = make_job(tmp_path)
        started = time.monotonic()
        assert launcher(api).launch(job) == code
        took = time.monotonic() - started
        # Not before the deadline; after it, at most one watch request and its read timeout,
        # with generous slack for a loaded machine (a hang would never return at all).
        assert START_TIMEOUT <= took < START_TIMEOUT + 30
        assert len(requests(api, "DELETE", f"/jobs/{NAME}")) == 1
        assert api.cluster.wait_for(lambda: not api.cluster.jobs, 5)
    lines = [ln for ln in capsys.readouterr().err.splitlines() if "pod(s) running" in ln]
    assert len(lines) == 1, lines
    assert needle in lines[0] and "deleting the job" in lines[0]
    if case == "quota":
        assert "exceeded quota" in lines[0]


def test_a_job_queued_by_kueue_is_not_held_to_the_start_deadline(tmp_path):
    def scenario(cluster, job):
        time.sleep(START_TIMEOUT + 1.5)  # queued (suspended) well past the start deadline
        cluster.update_job(NAME, lambda j: j["spec"].update(suspend=False))
        pod = cluster.add_pod(job, 0)
        cluster.write_log(pod, "admitted\n")
        cluster.end_pod(pod, 0)
        cluster.finish_job(NAME, "Complete")

    with KubernetesAPIDouble() as api:
        api.cluster.on_job_created = scenario
        job = make_job(tmp_path)
        settings = replace(SETTINGS, queue="gpus")
        assert launcher(api, settings).launch(job) == 0
        _, kind, created = api.cluster.events[0]  # the Job as submitted
        assert kind == "ADDED" and created["spec"]["suspend"] is True
        assert created["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "gpus"
        assert not requests(api, "DELETE", "/jobs")
    assert "admitted" in read(job.log_path)


# -- silent and cut streams -----------------------------------------------------------
def test_a_silent_watch_is_reopened_within_its_timeout(tmp_path):
    def scenario(cluster, job):
        pod = cluster.add_pod(job, 0)
        cluster.end_pod(pod, 0)
        time.sleep(0.3)
        cluster.finish_job(NAME, "Complete")  # sent to no one: the watch is silent

    with KubernetesAPIDouble() as api:
        api.cluster.silent_watches = 1
        api.cluster.on_job_created = scenario
        started = time.monotonic()
        assert launcher(api).launch(make_job(tmp_path)) == 0
        # watch_seconds (1) + read_timeout (1), then the Job is read afresh.
        assert time.monotonic() - started < 8
        assert requests(api, "GET", f"/jobs/{NAME}")


def test_a_silent_log_stream_is_reopened_and_the_log_is_whole(tmp_path):
    job = make_job(tmp_path)

    def scenario(cluster, created):
        pod = cluster.add_pod(created, 0)
        cluster.write_log(pod, "line 1\n")
        wait_until(lambda: "line 1" in read(job.log_path))  # live, after the silent stream
        cluster.write_log(pod, "line 2\n")
        cluster.end_pod(pod, 0)
        cluster.finish_job(NAME, "Complete")

    with KubernetesAPIDouble() as api:
        api.cluster.silent_log_streams = 1
        api.cluster.on_job_created = scenario
        assert launcher(api).launch(job) == 0
        assert len(requests(api, "GET", "/log")) >= 2
    log = read(job.log_path)
    assert log.count("line 1\n") == log.count("line 2\n") == 1


def test_a_log_stream_cut_mid_run_yields_the_complete_log(tmp_path):
    job = make_job(tmp_path)

    def scenario(cluster, created):
        pod = cluster.add_pod(created, 0)
        for cut in range(3):
            cluster.write_log(pod, "".join(f"step {cut}.{i}\n" for i in range(5)))
            wait_until(lambda c=cut: f"step {c}.4" in read(job.log_path))
            cluster.cut_log(pod)  # the connection drops; the pod runs on
            cluster.write_log(pod, f"written while cut {cut}\n")
        cluster.write_log(pod, "last line")  # no newline: a crash mid-line
        cluster.end_pod(pod, 0)
        cluster.finish_job(NAME, "Complete")

    with KubernetesAPIDouble() as api:
        api.cluster.on_job_created = scenario
        assert launcher(api).launch(job) == 0
        (pod,) = api.cluster.pods
        written = api.cluster.log_text(pod)
    log = read(job.log_path)
    body = log.split("(attempt 1)\n", 1)[1]
    assert body.startswith(written)  # every line, once, in order; then the launcher's line
    assert body[len(written) :].startswith("[audioflow] job")


def test_reattach_after_a_killed_launcher_does_not_repeat_lines(tmp_path):
    """A real `audioflow launch` process is SIGKILLed mid-run; a new launcher re-attaches."""
    job = make_job(tmp_path)
    pods = []

    def scenario(cluster, created):
        pods.append(cluster.add_pod(created, 0))
        cluster.write_log(pods[0], "before the restart 1\nbefore the restart 2\n")

    with KubernetesAPIDouble() as api:
        api.cluster.on_job_created = scenario
        proc = api.start_launcher(tmp_path, job, NS, "af:1", stderr=subprocess.DEVNULL)
        try:
            wait_until(lambda: "before the restart 2" in read(job.log_path), 30)
            wait_until(lambda: positions_path(job.log_path).exists(), 5)
        finally:
            proc.send_signal(signal.SIGKILL)  # no cleanup at all: the Job runs on
            proc.wait()
        cluster = api.cluster
        cluster.write_log(pods[0], "after the restart\n")

        def finish():
            wait_until(lambda: "re-attaching" in read(job.log_path))
            time.sleep(0.3)
            cluster.end_pod(pods[0], 0)
            cluster.finish_job(NAME, "Complete")

        threading.Thread(target=finish, daemon=True).start()
        assert launcher(api, replace(SETTINGS, image="af:1")).launch(job) == 0
    log = read(job.log_path)
    for line in ("before the restart 1\n", "before the restart 2\n", "after the restart\n"):
        assert log.count(line) == 1, log
    assert log.count("(attempt 1)") == 1 and "re-attaching" in log


def test_a_rank0_stream_hanging_on_a_dead_node_gives_way_to_the_replacement(tmp_path):
    job = make_job(tmp_path)

    def scenario(cluster, created):
        first = cluster.add_pod(created, 0)
        cluster.silent_log_pods.add(first)  # its node is gone: streams hang
        time.sleep(0.5)
        # The pod garbage collector marks the pod of the lost node failed and disrupted.
        cluster.end_pod(first, 137, disrupted=True)
        second = cluster.add_pod(created, 0)
        cluster.write_log(second, "resumed from checkpoint\nTraceback: real error\n")
        cluster.end_pod(second, 3)
        cluster.finish_job(NAME, "Failed", "BackoffLimitExceeded")

    with KubernetesAPIDouble() as api:
        api.cluster.on_job_created = scenario
        started = time.monotonic()
        assert launcher(api).launch(job) == 3  # the replacement's real code, not 1 or 137
        assert time.monotonic() - started < 20
    log = read(job.log_path)
    assert "resumed from checkpoint" in log and "(attempt 2)" in log
    assert "log is lost" in log


def test_a_log_thread_outliving_the_run_never_writes_to_the_log(tmp_path):
    job = make_job(tmp_path)
    pods = []

    def scenario(cluster, created):
        pods.append(cluster.add_pod(created, 0))
        cluster.silent_log_pods.add(pods[0])
        cluster.finish_job(NAME, "Complete")  # the pod is still "running": it never ends

    with KubernetesAPIDouble() as api:
        api.cluster.on_job_created = scenario
        assert launcher(api, log_drain_seconds=0.5).launch(job) == 0
        # the thread is gone when launch returns: one still reading or warning while the
        # interpreter shuts down aborts the launcher's process (SIGABRT, exit 134)
        assert not [t.name for t in threading.enumerate() if t.name.startswith("logs-")]
        before = read(job.log_path)
        assert "may be incomplete" in before
        api.cluster.silent_log_pods.clear()
        api.cluster.write_log(pods[0], "late line\n")
        time.sleep(2.5)  # the thread's stream times out and is reopened meanwhile
        assert read(job.log_path) == before


# -- preemption, real failures and exit codes -----------------------------------------
def gang(cluster, created, attempts: list[tuple[int, int]], final: int = 0) -> JobController:
    """Play a 2-node Job: each attempt ends with (node 0's code, node 1's code), a code
    of 143 meaning that node was preempted; the last attempt ends with ``final``."""
    ctl = JobController(cluster, created)
    pods = ctl.start()
    for code0, code1 in [*attempts, (final, final)]:
        for pod, code in ((pods[1], code1), (pods[0], code0)):
            cluster.write_log(pod, f"{pod}: training\n")
            cluster.end_pod(pod, code, disrupted=code == 143)
        if ctl.reconcile() is not None:
            break
        pods = ctl.pods()
    return ctl


def test_ten_preemptions_in_a_row_cost_nothing_and_a_real_failure_still_ends_the_job(tmp_path):
    controllers = []

    def preempted_ten_times(cluster, created):
        # Node 1 is preempted; node 0's torchrun exits peer-lost (test_peer_lost.py).
        attempts = [(PEER_LOST_EXIT_CODE, 143)] * 10
        controllers.append(gang(cluster, created, attempts))

    with KubernetesAPIDouble() as api:
        api.cluster.on_job_created = preempted_ten_times
        job = make_job(tmp_path, nodes=2)
        assert launcher(api).launch(job) == 0
        assert controllers[0].failed == 0
        assert len(api.cluster.pods_of(NAME)) == 2 * 11
    log = read(job.log_path)
    assert "(attempt 11)" in log and "Complete" in log

    def failing_for_real(cluster, created):
        # Node 1 fails by itself (exit 1) each time; node 0 exits peer-lost.
        attempts = [(PEER_LOST_EXIT_CODE, 1)] * 5
        controllers.append(gang(cluster, created, attempts))

    with KubernetesAPIDouble() as api:
        api.cluster.on_job_created = failing_for_real
        job = make_job(tmp_path / "second", nodes=2)
        assert launcher(api).launch(job) == 1
        # backoffLimit (2) counts attempts: the third real failure ends the Job.
        assert controllers[1].failed == SETTINGS.backoff_limit + 1
    assert "BackoffLimitExceeded" in read(job.log_path)


@pytest.mark.parametrize("codes", [(3, PEER_LOST_EXIT_CODE), (PEER_LOST_EXIT_CODE, 3)])
def test_the_rule_exits_with_the_real_code_of_the_failed_rank(tmp_path, codes):
    def scenario(cluster, created):
        gang(cluster, created, [codes] * 3)

    with KubernetesAPIDouble() as api:
        api.cluster.on_job_created = scenario
        assert launcher(api).launch(make_job(tmp_path, nodes=2)) == 3


def test_a_config_error_fails_the_job_at_once_and_is_not_retried(tmp_path):
    def scenario(cluster, created):
        gang(cluster, created, [(CONFIG_ERROR_EXIT_CODE, PEER_LOST_EXIT_CODE)] * 3)

    with KubernetesAPIDouble() as api:
        api.cluster.on_job_created = scenario
        assert launcher(api).launch(make_job(tmp_path, nodes=2)) == CONFIG_ERROR_EXIT_CODE
        assert len(api.cluster.pods_of(NAME)) == 2  # one attempt only
    # Nor does Snakemake retry it: the Job's backoffLimit is the only retry.
    assert yaml.safe_load((REPO / "k8s/config.yaml").read_text())["retries"] == 0


# -- what the launcher leaves behind --------------------------------------------------
def test_a_service_and_policy_of_another_job_are_replaced_and_everything_is_owned(tmp_path):
    from audioflow.launch.manifests import render_network_policy, render_service

    job = make_job(tmp_path)

    def scenario(cluster, created):
        pod = cluster.add_pod(created, 0)
        cluster.end_pod(pod, 0)
        cluster.finish_job(NAME, "Complete")

    with KubernetesAPIDouble() as api:
        cluster = api.cluster
        # Left by an earlier Job of the same name (its garbage collection pending), and
        # applied by hand from `k8s render` (no owner at all).
        cluster.create_service(render_service(job, SETTINGS, owner_uid="uid-of-an-old-job"))
        cluster.create_object(
            cluster.network_policies, "networkpolicies", render_network_policy(job, SETTINGS)
        )
        cluster.on_job_created = scenario
        assert launcher(api).launch(job) == 0
        uid = cluster.jobs[NAME]["metadata"]["uid"]
        for obj in (cluster.services[NAME], cluster.network_policies[NAME]):
            (owner,) = obj["metadata"]["ownerReferences"]
            assert owner["uid"] == uid and owner["blockOwnerDeletion"] is True
        # Deleting the Job removes them (as the garbage collector does).
        cluster.delete_job(NAME, "Foreground")
        assert cluster.wait_for(lambda: not cluster.services and not cluster.network_policies)
    log = read(job.log_path)
    assert "Service af-1a2b3c4d-train-3 belongs to another job: replacing it" in log
    assert "NetworkPolicy af-1a2b3c4d-train-3 belongs to another job" in log


def test_a_deletion_that_never_completes_is_one_line(tmp_path, capsys):
    job = make_job(tmp_path)
    with KubernetesAPIDouble() as api:
        cluster = api.cluster
        cluster.create_job(render_job(job, SETTINGS))
        cluster.finish_job(NAME, "Failed", "BackoffLimitExceeded")
        cluster.stuck_deletions = True
        assert launcher(api, delete_wait_seconds=0.5).launch(job) == 1
    err = capsys.readouterr().err.splitlines()
    stuck = [line for line in err if "still exists" in line]
    assert len(stuck) == 1 and "Traceback" not in "\n".join(err)
    assert f"kubectl -n {NS} describe job {NAME}" in stuck[0]


def test_the_start_clock_runs_only_while_a_needed_pod_has_not_started():
    from audioflow.launch.k8s_watch import StartDeadline, StartTimeout

    now = [0.0]
    deadline = StartDeadline(10, nodes=2, events=lambda: [], clock=lambda: now[0])

    def pod(index: int, phase: str) -> dict:
        annotations = {"batch.kubernetes.io/job-completion-index": str(index)}
        meta = {"name": f"p{index}-{phase}", "annotations": annotations}
        return {"metadata": meta, "status": {"phase": phase}}

    job = {"spec": {}}
    running = [pod(0, "Running"), pod(1, "Running")]
    deadline.check(job, running)
    now[0] = 100.0
    deadline.check(job, running)  # all started: no clock
    restarting = [*running, pod(1, "Pending")]  # node 1 lost, its replacement pending
    deadline.check(job, restarting)
    now[0] = 109.0
    deadline.check(job, restarting)
    deadline.check({"spec": {"suspend": True}}, restarting)  # requeued by Kueue: reset
    now[0] = 115.0
    deadline.check(job, restarting)  # the clock starts again
    now[0] = 125.5
    with pytest.raises(StartTimeout, match=r"1/2 pod\(s\) running after 10s"):
        deadline.check(job, restarting)
