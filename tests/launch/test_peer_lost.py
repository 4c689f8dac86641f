"""The peer-lost path on localhost: two real torchrun "nodes" (gloo) through audioflow's
torchrun entry point, one of them killed, stopped or failing for real.

A survivor must exit with PEER_LOST_EXIT_CODE (which the Job's podFailurePolicy ignores)
within the rendezvous timeout, while a node that really failed keeps its own exit code,
so that the Job counts exactly one failure per real one and none per preemption.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from audioflow.launch.base import PEER_LOST_EXIT_CODE
from audioflow.launch.peers import PEER_PORT_OFFSET, topology_from_torchrun_args

pytestmark = pytest.mark.timeout(120)

# Detection must beat this: what torchrun's static rendezvous would wait (600 s) is far
# longer, but a stuck survivor must not hold its GPUs for that long.
SURVIVOR_DEADLINE = 30
WORKER = """\
import os, sys, time, torch, torch.distributed as dist
dist.init_process_group("gloo")
rank = dist.get_rank()
fail_rank, fail_code = int(os.environ.get("FAIL_RANK", -1)), int(os.environ.get("FAIL_CODE", 0))
for step in range(10**6):
    t = torch.ones(1)
    dist.all_reduce(t)
    if step == 2:
        open(os.path.join(os.environ["OUT"], f"ready{rank}"), "w").write(str(int(t.item())))
    if rank == fail_rank and step == 10:
        print("worker: a real failure", file=sys.stderr, flush=True)
        os._exit(fail_code)  # as a crash: no process-group teardown
    if os.environ.get("STEPS") and step >= int(os.environ["STEPS"]):
        break
    time.sleep(0.05)
dist.destroy_process_group()
"""


def free_port_pair() -> int:
    """A port P with P and P + PEER_PORT_OFFSET both free on 127.0.0.1."""
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        try:
            with socket.socket() as s:
                s.bind(("127.0.0.1", port + PEER_PORT_OFFSET))
            return port
        except OSError:
            continue
    raise RuntimeError("no free port pair")


def start_nodes(tmp_path: Path, **env_extra: str) -> list[subprocess.Popen]:
    worker = tmp_path / "worker.py"
    worker.write_text(WORKER)
    port = free_port_pair()
    env = dict(os.environ, OMP_NUM_THREADS="1", OUT=str(tmp_path), **env_extra)
    env.update(AUDIOFLOW_PEER_SILENCE="5", AUDIOFLOW_PEER_GRACE="3")
    env["AUDIOFLOW_PEER_JOIN_TIMEOUT"] = "60"
    procs = []
    for rank in range(2):
        cmd = [sys.executable, "-m", "audioflow.launch.torchrun", "--nnodes=2"]
        cmd += [f"--node-rank={rank}", "--master-addr=127.0.0.1", f"--master-port={port}"]
        cmd += ["--nproc-per-node=1", "--monitor-interval=0.1", str(worker)]
        # Its own session per node: killing a "pod" kills torchrun and its workers at once.
        procs.append(
            subprocess.Popen(
                cmd, env=env, stderr=subprocess.PIPE, text=True, start_new_session=True
            )
        )
    deadline = time.monotonic() + 90
    while not all((tmp_path / f"ready{r}").exists() for r in range(2)):
        for proc in procs:
            if proc.poll() is not None:
                stop(procs)
                pytest.fail(f"a node ended before training: {proc.stderr.read()[-2000:]}")
        if time.monotonic() > deadline:
            stop(procs)
            pytest.fail("the two nodes never trained together")
        time.sleep(0.1)
    return procs


def stop(procs: list[subprocess.Popen]) -> None:
    for proc in procs:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def wait_exit(proc: subprocess.Popen, seconds: float) -> tuple[int, float, str]:
    start = time.monotonic()
    try:
        code = proc.wait(seconds)
    except subprocess.TimeoutExpired:
        code = None
    return code, time.monotonic() - start, proc.stderr.read() if code is not None else ""


@pytest.mark.parametrize(
    "killed",
    [1, pytest.param(0, marks=pytest.mark.slow)],
    ids=["worker-node-killed", "master-node-killed"],
)
def test_killing_one_node_makes_the_other_exit_peer_lost(tmp_path, killed):
    procs = start_nodes(tmp_path)
    try:
        os.killpg(procs[killed].pid, signal.SIGKILL)  # the pod vanishes: no goodbye
        code, took, err = wait_exit(procs[1 - killed], SURVIVOR_DEADLINE)
        assert code == PEER_LOST_EXIT_CODE, err[-3000:]
        assert took < SURVIVOR_DEADLINE
        assert "peer lost" in err
    finally:
        stop(procs)


@pytest.mark.slow
def test_a_stopped_node_is_not_a_failure_of_the_other(tmp_path):
    """SIGTERM, as the kubelet sends on preemption: the stopped node exits 143 (its pod is
    ignored by its DisruptionTarget condition), the survivor exits peer-lost."""
    procs = start_nodes(tmp_path)
    try:
        os.killpg(procs[1].pid, signal.SIGTERM)
        code, _, err = wait_exit(procs[1], SURVIVOR_DEADLINE)
        assert code == 128 + signal.SIGTERM, err[-3000:]
        code, _, err = wait_exit(procs[0], SURVIVOR_DEADLINE)
        assert code == PEER_LOST_EXIT_CODE, err[-3000:]
    finally:
        stop(procs)


@pytest.mark.slow
def test_a_real_failure_keeps_its_code_and_the_other_node_exits_peer_lost(tmp_path):
    procs = start_nodes(tmp_path, FAIL_RANK="1", FAIL_CODE="3")
    try:
        codes = [wait_exit(proc, SURVIVOR_DEADLINE) for proc in procs]
        assert codes[1][0] == 3, codes[1][2][-3000:]
        assert codes[0][0] == PEER_LOST_EXIT_CODE, codes[0][2][-3000:]
    finally:
        stop(procs)


@pytest.mark.slow
def test_nodes_that_both_finish_exit_0(tmp_path):
    procs = start_nodes(tmp_path, STEPS="30")
    try:
        for proc in procs:
            code, _, err = wait_exit(proc, 60)
            assert code == 0, err[-3000:]
    finally:
        stop(procs)


def test_topology_is_read_from_the_rendered_torchrun_options():
    argv = ["--nnodes=2", "--node-rank=1", "--master-addr=job-0.job", "--master-port=29500"]
    topo = topology_from_torchrun_args([*argv, "--nproc-per-node=8", "-m", "audioflow.cli"])
    assert (topo.nnodes, topo.node_rank, topo.master_addr, topo.peer_port) == (
        2,
        1,
        "job-0.job",
        29501,
    )
    assert topology_from_torchrun_args(["--standalone", "--nproc-per-node=2", "-m", "x"]) is None
    assert topology_from_torchrun_args(["--nnodes", "1", "-m", "x", "--nnodes=2"]) is None


def watches(silence: float = 5) -> tuple:
    from audioflow.launch.peers import PeerWatch, Topology

    port = free_port_pair()
    nodes = [
        PeerWatch(Topology(2, rank, "127.0.0.1", port), silence_seconds=silence, join_seconds=10)
        for rank in range(2)
    ]
    nodes[0].start()
    nodes[1].start()
    return nodes


def test_a_node_that_finishes_is_not_lost_and_one_that_leaves_is():
    node0, node1 = watches()
    node1.close(done=True)
    assert not node0.lost.wait(1.5)
    node0.close(done=True)
    node0, node1 = watches()
    node1.leaving()  # SIGTERM: said before the workers stop
    assert node0.lost.wait(5) and "stopped" in node0.reason
    assert node1.lost.wait(5)  # node 0 drops every link once a peer is lost
    node0.close(done=False)
    node1.close(done=False)


def test_node_0_names_exactly_one_failure_primary():
    node0, node1 = watches()
    assert node1.failure_is_primary(timeout=5) is True  # first to report
    assert node0.failure_is_primary(timeout=5) is False  # follows from node 1's
    node1.close(done=False)
    node0.close(done=False)
    node0, node1 = watches()
    node1.close(done=False)  # gone without a word: a peer lost, not a failure
    assert node0.failure_is_primary(timeout=5) is False
    node0.close(done=False)


def test_a_silent_peer_is_lost_after_the_silence_timeout():
    import socket as socket_

    from audioflow.launch.peers import PeerWatch, Topology

    port = free_port_pair()
    node0 = PeerWatch(Topology(2, 0, "127.0.0.1", port), silence_seconds=1, join_seconds=5)
    node0.start()
    # A node that links up and then says nothing (its machine froze).
    frozen = socket_.create_connection(("127.0.0.1", port + PEER_PORT_OFFSET))
    frozen.sendall(b"1\n")
    started = time.monotonic()
    assert node0.lost.wait(5) and "silent" in node0.reason
    assert time.monotonic() - started < 3
    frozen.close()
