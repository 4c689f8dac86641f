"""Fixtures for the monitoring tests: free ports, the Prometheus binaries, scraping."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
MONITORING_DIR = REPO / "k8s" / "monitoring"
INSTALL_HINT = "install Debian's package (apt-get install prometheus), as .ci/run does"


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def binary(name: str, package: str) -> str:
    """Path of a system binary, or skip the test saying how to install it."""
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"`{name}` not on PATH: apt-get install {package}, as .ci/run does")
    return path


def http_get(url: str, timeout: float = 5.0) -> str:
    """GET a URL and return the body as text."""
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return response.read().decode()


def wait_http(url: str, proc: subprocess.Popen | None = None, timeout: float = 30.0) -> None:
    """Wait until ``url`` answers 200, failing early if ``proc`` exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            pytest.fail(f"{proc.args[0]} exited with {proc.returncode} before serving {url}")
        try:
            http_get(url, timeout=1.0)
            return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.2)
    pytest.fail(f"{url} did not answer within {timeout} s")


def stop(proc: subprocess.Popen) -> None:
    """Terminate a server started by a test and reap it."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture
def promtool() -> str:
    return binary("promtool", "prometheus")


@pytest.fixture
def prometheus_bin() -> str:
    return binary("prometheus", "prometheus")


@pytest.fixture
def pushgateway(tmp_path):
    """A real Pushgateway on 127.0.0.1; yields its base URL."""
    exe = binary("prometheus-pushgateway", "prometheus-pushgateway")
    port = free_port()
    log = open(tmp_path / "pushgateway.log", "w")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [exe, f"--web.listen-address=127.0.0.1:{port}", "--persistence.file="],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(url + "/-/ready", proc)
        yield url
    finally:
        stop(proc)
        log.close()
