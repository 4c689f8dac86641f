"""A local HTTP test double of the Kubernetes API, for testing the launcher's control flow.

No Kubernetes API server can be installed on the machines these tests run on, so this
double serves the real REST paths and JSON shapes the launcher uses, on 127.0.0.1:

- ``/apis/batch/v1/namespaces/{ns}/jobs`` (POST, GET with ``watch=true`` streaming events,
  ``fieldSelector``, ``resourceVersion``, ``timeoutSeconds``) and ``.../jobs/{name}``
  (GET, DELETE with ``propagationPolicy``);
- ``/api/v1/namespaces/{ns}/services`` (POST) and ``.../services/{name}`` (GET, DELETE);
- ``/apis/networking.k8s.io/v1/namespaces/{ns}/networkpolicies`` (POST) and ``.../{name}``
  (GET, DELETE);
- ``/api/v1/namespaces/{ns}/pods?labelSelector=...`` (GET), ``.../pods/{name}`` (GET) and
  ``.../pods/{name}/log`` (GET, ``follow=true`` streaming until the container ends,
  ``timestamps=true`` stamping each line RFC3339Nano, ``sinceSeconds``);
- ``/api/v1/namespaces/{ns}/events?fieldSelector=involvedObject...`` (GET).

Faults a real cluster shows, on demand: watches and log streams that send their headers
and then nothing (``silent_watches``, ``silent_log_streams``), a log stream cut while its
pod runs (``cut_log``), expired resourceVersions (``expired_below``), deletions that never
complete (``stuck_deletions``), 403s, and names taken by other controllers.

Tests play the Job controller and the kubelet through :class:`FakeCluster`'s methods
(``add_pod``, ``write_log``, ``end_pod``, ``finish_job``) or its :class:`JobController`,
usually from a scenario function called in a thread when a Job is created.
"""

from __future__ import annotations

import copy
import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

from .k8s_fake_cluster import FakeCluster, rfc3339_nano, status

_JOBS = re.compile(r"^/apis/batch/v1/namespaces/([^/]+)/jobs(?:/([^/]+))?$")
_SERVICES = re.compile(r"^/api/v1/namespaces/([^/]+)/services(?:/([^/]+))?$")
_POLICIES = re.compile(
    r"^/apis/networking.k8s.io/v1/namespaces/([^/]+)/networkpolicies(?:/([^/]+))?$"
)
_PODS = re.compile(r"^/api/v1/namespaces/([^/]+)/pods(?:/([^/]+))?$")
_LOG = re.compile(r"^/api/v1/namespaces/([^/]+)/pods/([^/]+)/log$")
_EVENTS = re.compile(r"^/api/v1/namespaces/([^/]+)/events$")
SILENCE_SECONDS = 120  # how long a silent stream stays open (the client must give up first)


class _Handler(BaseHTTPRequestHandler):
    # As the API server: HTTP/1.1, streams (watch, follow) in chunked transfer encoding.
    protocol_version = "HTTP/1.1"
    cluster: FakeCluster

    def log_message(self, *args) -> None:  # keep test output clean
        pass

    def _send(self, code: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _start_stream(self, content_type: str) -> None:
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def _end_stream(self) -> None:
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def _body(self) -> dict:
        length = int(self.headers.get("Content-Length") or 0)
        return json.loads(self.rfile.read(length) or b"{}")

    def _route(self, method: str) -> None:
        url = urlparse(self.path)
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        self.cluster.requests.append((method, url.path, query))
        c = self.cluster
        if c.forbidden:
            user = "system:serviceaccount:audioflow:default"
            msg = f'jobs.batch is forbidden: User "{user}" cannot {method.lower()} resource "jobs"'
            return self._send(403, status(403, "Forbidden", msg))
        if m := _JOBS.match(url.path):
            name = m.group(2)
            if method == "POST" and not name:
                return self._send(*c.create_job(self._body()))
            if method == "DELETE" and name:
                body = self._body()
                policy = query.get("propagationPolicy") or body.get("propagationPolicy")
                return self._send(*c.delete_job(name, policy))
            if method == "GET" and name:
                with c.cond:
                    job = copy.deepcopy(c.jobs.get(name))
                if job is None:
                    return self._send(
                        404, status(404, "NotFound", f'jobs.batch "{name}" not found')
                    )
                return self._send(200, job)
            if method == "GET" and query.get("watch") == "true":
                return self._watch_jobs(query)
        for pattern, store, plural in (
            (_SERVICES, c.services, "services"),
            (_POLICIES, c.network_policies, "networkpolicies"),
        ):
            if m := pattern.match(url.path):
                name = m.group(2)
                if method == "POST" and not name:
                    return self._send(*c.create_object(store, plural, self._body()))
                if method == "DELETE" and name:
                    return self._send(*c.delete_object(store, plural, name))
                if method == "GET" and name:
                    with c.cond:
                        obj = copy.deepcopy(store.get(name))
                    if obj is None:
                        return self._send(404, status(404, "NotFound", f'{plural} "{name}"'))
                    return self._send(200, obj)
        if (m := _PODS.match(url.path)) and method == "GET":
            if not m.group(2):
                return self._send(200, c.list_pods(query.get("labelSelector", "")))
            with c.cond:
                pod = copy.deepcopy(c.pods.get(m.group(2)))
            if pod is None:
                return self._send(404, status(404, "NotFound", f'pods "{m.group(2)}" not found'))
            return self._send(200, pod)
        if (m := _LOG.match(url.path)) and method == "GET":
            return self._pod_log(m.group(2), query)
        if _EVENTS.match(url.path) and method == "GET":
            return self._send(200, c.list_events(query.get("fieldSelector", "")))
        self._send(404, status(404, "NotFound", f"the double does not serve {method} {url.path}"))

    def _silence(self, content_type: str) -> None:
        """Headers, then nothing: what a client sees from a dead node or a stuck proxy."""
        self._start_stream(content_type)
        c = self.cluster
        with c.cond:
            c.cond.wait_for(lambda: c.closed, SILENCE_SECONDS)

    def _watch_jobs(self, query: dict) -> None:
        c = self.cluster
        with c.cond:
            silent = c.silent_watches > 0
            c.silent_watches -= silent
        if silent:
            return self._silence("application/json")
        name = query.get("fieldSelector", "").removeprefix("metadata.name=")
        since = int(query.get("resourceVersion") or 0)
        deadline = threading.Event()
        threading.Timer(float(query.get("timeoutSeconds") or 30), deadline.set).start()
        self._start_stream("application/json")
        try:
            self._stream_job_events(c, name, since, deadline)
        finally:
            self._end_stream()

    def _stream_job_events(self, c: FakeCluster, name: str, since: int, deadline) -> None:
        if since and since < c.expired_below:
            gone = status(410, "Expired", f"too old resource version: {since}")
            self._chunk(json.dumps({"type": "ERROR", "object": gone}).encode() + b"\n")
            return
        sent = since
        if not since:
            # No resourceVersion: the current object first, as a synthetic ADDED event.
            with c.cond:
                job, sent = copy.deepcopy(c.jobs.get(name)), c.events[-1][0] if c.events else 0
            if job is not None:
                self._chunk(json.dumps({"type": "ADDED", "object": job}).encode() + b"\n")
        while not deadline.is_set() and not c.closed:
            with c.cond:
                new = [(rv, t, j) for rv, t, j in c.events if rv > sent]
                if not new:
                    c.cond.wait(0.05)
                    continue
            for rv, kind, job in new:
                sent = rv
                if job["metadata"]["name"] == name:
                    self._chunk(json.dumps({"type": kind, "object": job}).encode() + b"\n")

    def _pod_log(self, pod: str, query: dict) -> None:
        c = self.cluster
        follow, stamped = query.get("follow") == "true", query.get("timestamps") == "true"
        with c.cond:
            phase = c.pods.get(pod, {}).get("status", {}).get("phase")
            silent = c.silent_log_streams > 0 and phase is not None and phase != "Pending"
            c.silent_log_streams -= silent
            silent = silent or pod in c.silent_log_pods
        if phase is None:
            return self._send(404, status(404, "NotFound", f'pods "{pod}" not found'))
        if phase == "Pending":
            msg = f'container "trainer" in pod "{pod}" is waiting to start: ContainerCreating'
            return self._send(400, status(400, "BadRequest", msg))
        if silent:
            return self._silence("text/plain")
        since = 0
        if "sinceSeconds" in query:
            since = time.time_ns() - int(query["sinceSeconds"]) * 10**9
        self._start_stream("text/plain")
        with c.cond:
            cut = c.log_cuts[pod]
        sent = 0
        while True:
            with c.cond:
                c.cond.wait_for(
                    lambda n=sent: (
                        len(c.logs[pod]) > n or c.log_closed[pod] or c.log_cuts[pod] != cut
                    ),
                    0.5,
                )
                lines, done = c.logs[pod][sent:], c.log_closed[pod]
                was_cut = c.log_cuts[pod] != cut
            data = b"".join(
                (f"{rfc3339_nano(ns)} ".encode() if stamped else b"") + line
                for ns, line in lines
                if ns >= since
            )
            sent += len(lines)
            if data:
                self._chunk(data)
            if done or was_cut or not follow or c.closed:
                return self._end_stream()

    def do_GET(self) -> None:
        self._route("GET")

    def do_POST(self) -> None:
        self._route("POST")

    def do_DELETE(self) -> None:
        self._route("DELETE")


class KubernetesAPIDouble:
    """The double's HTTP server on 127.0.0.1, in a background thread.

    Attributes:
        cluster: the state tests drive and inspect.
        url: ``http://127.0.0.1:<port>``.
    """

    def __init__(self):
        self.cluster = FakeCluster()
        handler = type("Handler", (_Handler,), {"cluster": self.cluster})
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> KubernetesAPIDouble:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.cluster.closed = True
        with self.cluster.cond:
            self.cluster.cond.notify_all()
        self.server.shutdown()
        self.server.server_close()

    def start_launcher(self, folder, job, namespace: str, image: str, **popen):
        """Start a real ``audioflow launch --launcher kubernetes`` process for ``job``
        against the double (its kubeconfig and team file written to ``folder``)."""
        import os
        import subprocess
        import sys

        team = folder / "team.yaml"
        kube = {"namespace": namespace, "image": image}
        team.write_text(json.dumps({"clusters": {"kubernetes": {"kubernetes": kube}}}))
        self.kubeconfig(folder / "kubeconfig")
        env = dict(os.environ, KUBECONFIG=str(folder / "kubeconfig"), AUDIOFLOW_CONFIG=str(team))
        env.pop("AUDIOFLOW_CLUSTER", None)
        cmd = [sys.executable, "-m", "audioflow.cli", "launch", "--launcher", "kubernetes"]
        cmd += ["--name", job.name, "--log", str(job.log_path), "--", *job.args]
        return subprocess.Popen(cmd, env=env, **popen)

    def kubeconfig(self, path) -> None:
        """Write a kubeconfig file pointing at the double (for launcher subprocesses)."""
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "double", "cluster": {"server": self.url}}],
            "users": [{"name": "tester", "user": {"token": "test-token"}}],
            "contexts": [{"name": "double", "context": {"cluster": "double", "user": "tester"}}],
            "current-context": "double",
        }
        path.write_text(json.dumps(config))
