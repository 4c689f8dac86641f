"""Know when another node of a multi-node job is gone, so the survivors can say so.

When one node of a torchrun job disappears (a preempted pod, a drained machine), the
other nodes' workers fail on their next collective, or hang in it. Without more, they
exit 1, and the Kubernetes Job counts each survivor as a failure: a 2-node job would fail
after a few preemptions. Each node's ``audioflow.launch.torchrun`` therefore keeps a
:class:`PeerWatch`: one TCP link from every node to node 0 (on the rendezvous port + 1),
with a heartbeat each way. The messages on a link, one byte each:

- ``.`` heartbeat; a link silent for ``silence_seconds`` counts as lost;
- ``D`` done: the node ended normally (a peer still writing its last files is not lost);
- ``X`` leaving: the node was told to stop (SIGTERM: preemption, eviction);
- ``F`` (to node 0) failed: this node's workers failed; node 0 answers ``P`` (primary:
  the first failure of the job, a real one) or ``S`` (secondary: a failure that follows
  another node's).

A link that closes without ``D``, or says ``X``, means a peer is lost. A node whose
failure is secondary, or follows a lost peer, exits with ``PEER_LOST_EXIT_CODE``, which
the Job's podFailurePolicy ignores: only the node that really failed is counted (a
disrupted one is ignored too), and the whole gang restarts from the last checkpoint.
Node 0 arbitrates by arrival order, so when two nodes fail within milliseconds of each
other the earlier report wins; exactly one failing node is ever primary.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from dataclasses import dataclass

logger = logging.getLogger(__name__)

# The peer links listen next to torchrun's rendezvous port (the Service and the
# NetworkPolicy open both).
PEER_PORT_OFFSET = 1
HEARTBEAT_SECONDS = 1.0
_BEAT, _DONE, _LEAVING, _FAILED, _PRIMARY, _SECONDARY = (bytes([c]) for c in b".DXFPS")


@dataclass(frozen=True)
class Topology:
    """Where one node stands in a multi-node torchrun job (from torchrun's arguments)."""

    nnodes: int
    node_rank: int
    master_addr: str
    master_port: int

    @property
    def peer_port(self) -> int:
        return self.master_port + PEER_PORT_OFFSET


def topology_from_torchrun_args(argv: list[str]) -> Topology | None:
    """The node's place in the job, read from torchrun's own options.

    Only the options before the script (``-m module`` or a path) are torchrun's.

    Returns:
        None for a single-node job (``--standalone`` or ``--nnodes=1``) or options that
        do not name a node rank and a master.
    """
    options: dict[str, str] = {}
    i = 0
    while i < len(argv) and argv[i] != "-m" and argv[i].startswith("-"):
        key, sep, value = argv[i].partition("=")
        if not sep and i + 1 < len(argv) and not argv[i + 1].startswith("-"):
            value, i = argv[i + 1], i + 1
        options[key.replace("_", "-")] = value
        i += 1
    if "--standalone" in options:
        return None
    try:
        nnodes = int(options.get("--nnodes", "1"))
        if nnodes < 2:
            return None
        return Topology(
            nnodes=nnodes,
            node_rank=int(options["--node-rank"]),
            master_addr=options["--master-addr"],
            master_port=int(options.get("--master-port", "29500")),
        )
    except (KeyError, ValueError):
        return None


class _Link:
    """One peer link: a socket, when it was last heard from, how it ended."""

    def __init__(self, sock: socket.socket, peer: int):
        self.sock, self.peer = sock, peer
        self.last_heard = time.monotonic()
        self.done = False
        self.verdict: bytes | None = None  # node 0's answer to this node's F
        self.send_lock = threading.Lock()

    def send(self, data: bytes) -> None:
        with self.send_lock:
            self.sock.sendall(data)


class PeerWatch:
    """The links of one node to the others: node 0 accepts one per node, the others connect.

    Args:
        topology: the node's place in the job.
        silence_seconds: a link with no heartbeat for this long counts as lost (a node
            that vanished without closing its sockets, e.g. a dead machine).
        join_seconds: how long a node waits for node 0 to answer (torchrun's rendezvous
            timeout; the replacement of a preempted node 0 may still be starting).
    """

    def __init__(self, topology: Topology, silence_seconds: float, join_seconds: float):
        self.topology = topology
        self.silence_seconds = silence_seconds
        self.join_seconds = join_seconds
        self.lost = threading.Event()
        self.reason = ""
        self.primary: int | None = None  # node 0: the node whose failure came first
        self._links: dict[int, _Link] = {}
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._closed = threading.Event()
        self._server: socket.socket | None = None

    # -- starting -------------------------------------------------------------------
    def start(self) -> None:
        """Node 0: listen for the others. Any other node: connect to node 0 (blocking).

        Raises:
            OSError: node 0 cannot listen on the peer port.
            TimeoutError: node 0 did not answer within ``join_seconds``.
        """
        if self.topology.node_rank == 0:
            self._server = socket.create_server(("", self.topology.peer_port))
            threading.Thread(target=self._accept, name="peer-accept", daemon=True).start()
        else:
            self._connect()
        threading.Thread(target=self._beat, name="peer-heartbeat", daemon=True).start()

    def _connect(self) -> None:
        deadline = time.monotonic() + self.join_seconds
        where = (self.topology.master_addr, self.topology.peer_port)
        while True:
            try:
                sock = socket.create_connection(where, timeout=5)
                break
            except OSError as exc:  # not resolvable yet, refused: node 0 is still starting
                if time.monotonic() > deadline:
                    raise TimeoutError(
                        f"node 0 ({where[0]}:{where[1]}) did not answer within "
                        f"{self.join_seconds:.0f}s: {exc}"
                    ) from exc
                time.sleep(0.5)
        sock.sendall(f"{self.topology.node_rank}\n".encode())
        self._add(_Link(sock, 0))

    def _accept(self) -> None:
        assert self._server is not None
        while not self._closed.is_set():
            try:
                sock, _ = self._server.accept()
                sock.settimeout(self.silence_seconds)
                line = b""
                while not line.endswith(b"\n") and len(line) < 16:
                    line += sock.recv(1) or b"\n"
                peer = int(line.strip() or -1)
            except (OSError, ValueError):
                if self._closed.is_set():
                    return
                continue
            with self._lock:
                replaced = peer in self._links
            if replaced:
                # A new pod for a node this one still links to: the old one is gone.
                sock.close()
                return self._lose(f"node {peer} was replaced")
            self._add(_Link(sock, peer))

    def _add(self, link: _Link) -> None:
        link.sock.settimeout(self.silence_seconds)
        with self._changed:
            self._links[link.peer] = link
            self._changed.notify_all()
        threading.Thread(target=self._read, args=(link,), name="peer-read", daemon=True).start()

    # -- running --------------------------------------------------------------------
    def _read(self, link: _Link) -> None:
        while not self._closed.is_set():
            try:
                data = link.sock.recv(64)
            except TimeoutError:
                return self._lose(f"node {link.peer} silent for {self.silence_seconds:.0f}s")
            except OSError as exc:
                return self._lose(f"link to node {link.peer} broke: {exc}")
            if not data:
                if not link.done:
                    self._lose(f"node {link.peer} is gone")
                return
            link.last_heard = time.monotonic()
            for message in (bytes([b]) for b in data):
                self._handle(link, message)

    def _handle(self, link: _Link, message: bytes) -> None:
        if message == _DONE:
            link.done = True
        elif message == _LEAVING:
            self._lose(f"node {link.peer} was stopped")
        elif message == _FAILED:  # node 0 only
            threading.Thread(target=self._judge, args=(link,), daemon=True).start()
        elif message in (_PRIMARY, _SECONDARY):
            with self._changed:
                link.verdict = message
                self._changed.notify_all()

    def _judge(self, link: _Link) -> None:
        verdict = _PRIMARY if self._claim(link.peer) else _SECONDARY
        try:
            link.send(verdict)
        except OSError:
            pass

    def _claim(self, node: int) -> bool:
        """Node 0: record ``node``'s failure; True if it is the job's first."""
        # A node killed at the same moment closes its link as the workers' collectives
        # break: give that news a heartbeat's time to arrive before judging.
        if self.lost.wait(HEARTBEAT_SECONDS):
            return False
        with self._lock:
            if self.primary is None and not self.lost.is_set():
                self.primary = node
            return self.primary == node

    def _beat(self) -> None:
        while not self._closed.wait(HEARTBEAT_SECONDS):
            for link in self._snapshot():
                try:
                    link.send(_BEAT)
                except OSError:
                    pass  # the reader sees the same failure and reports it

    def _snapshot(self) -> list[_Link]:
        with self._lock:
            return list(self._links.values())

    def _lose(self, reason: str) -> None:
        if self._closed.is_set() or self.lost.is_set():
            return
        self.reason = reason
        self.lost.set()
        logger.warning("audioflow peers: %s", reason)
        if self.topology.node_rank == 0:
            # Node 0 drops every link, so the other nodes learn it too; a replacement pod
            # of the lost node finds no listener here and waits for the next node 0.
            self._shutdown()

    # -- asking and ending ----------------------------------------------------------
    def failure_is_primary(self, timeout: float) -> bool:
        """This node's workers failed: is that the job's first failure (a real one)?

        False when a peer was lost first, or another node reported its failure first (this
        one follows from it). Node 0 decides; the others ask it and wait for the answer,
        at most ``timeout`` seconds (no answer: counted as a real failure).
        """
        if self.lost.is_set():
            return False
        if self.topology.node_rank == 0:
            return self._claim(0)
        with self._changed:
            link = self._links.get(0)
        if link is None:
            return True
        try:
            link.send(_FAILED)
        except OSError:
            return not self.lost.wait(1.0)
        with self._changed:
            self._changed.wait_for(lambda: link.verdict is not None or self.lost.is_set(), timeout)
            if link.verdict is not None:
                return link.verdict == _PRIMARY
        return not self.lost.is_set()

    def leaving(self) -> None:
        """Tell the peers this node was told to stop (before its workers are stopped)."""
        for link in self._snapshot():
            try:
                link.send(_LEAVING)
            except OSError:
                pass

    def close(self, done: bool) -> None:
        """End the links; ``done`` tells the peers this node finished normally."""
        for link in self._snapshot() if done else []:
            try:
                link.send(_DONE)
            except OSError:
                pass
        self._shutdown()

    def _shutdown(self) -> None:
        self._closed.set()
        if self._server is not None:
            self._server.close()
        for link in self._snapshot():
            try:
                link.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            link.sock.close()
