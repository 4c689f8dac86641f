"""Fixtures for the monitoring tests: free ports, the Prometheus binaries, scraping."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
import yaml

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


def local_scrape_config(target_port: int, out_dir: Path, scrape_interval: str = "1s") -> Path:
    """A temp copy of the shipped local scrape config aimed at one port."""
    config = yaml.safe_load((MONITORING_DIR / "prometheus-local.yml").read_text())
    config["global"]["scrape_interval"] = scrape_interval
    config["global"]["evaluation_interval"] = scrape_interval
    for job in config["scrape_configs"]:
        job["static_configs"] = [{"targets": [f"127.0.0.1:{target_port}"]}]
    path = out_dir / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    return path


def prom_query(base_url: str, query: str) -> dict:
    """Run an instant query through Prometheus' HTTP API; returns its ``data``."""
    url = f"{base_url}/api/v1/query?" + urllib.parse.urlencode({"query": query})
    try:
        body = json.loads(http_get(url))
    except urllib.error.HTTPError as exc:  # a bad query answers 400 with a JSON error
        body = json.loads(exc.read().decode())
    assert body["status"] == "success", f"{query}: {body.get('error')}"
    return body["data"]


@pytest.fixture
def start_prometheus(prometheus_bin, tmp_path):
    """Start a real Prometheus on 127.0.0.1 scraping one local port; returns its base URL."""
    procs: list[tuple[subprocess.Popen, object]] = []

    def start(target_port: int, scrape_interval: str = "1s") -> str:
        config = local_scrape_config(target_port, tmp_path, scrape_interval)
        port = free_port()
        log = open(tmp_path / "prometheus.log", "w")  # noqa: SIM115 - closed below
        proc = subprocess.Popen(
            [
                prometheus_bin,
                f"--config.file={config}",
                f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        procs.append((proc, log))
        url = f"http://127.0.0.1:{port}"
        wait_http(url + "/-/ready", proc)
        return url

    yield start
    for proc, log in procs:
        stop(proc)
        log.close()
