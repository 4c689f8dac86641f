"""The shipped scrape configs and PodMonitor are valid and select the same pods."""

from __future__ import annotations

import subprocess

import pytest
import yaml

from audioflow.monitoring.stage import PORT_SPAN

from .conftest import MONITORING_DIR

LOCAL = MONITORING_DIR / "prometheus-local.yml"
KUBERNETES = MONITORING_DIR / "prometheus-kubernetes.yml"
PODMONITOR = MONITORING_DIR / "podmonitor.yaml"
POD_LABEL = ("app.kubernetes.io/name", "audioflow")
PORT_NAME = "metrics"


def check_config(promtool: str, path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [promtool, "check", "config", str(path)], capture_output=True, text=True, timeout=60
    )


@pytest.mark.parametrize("path", [LOCAL, KUBERNETES, PODMONITOR], ids=lambda p: p.name)
def test_shipped_yaml_starts_with_its_purpose_and_command(path):
    head = path.read_text().splitlines()[:6]
    assert head[0].startswith("# "), f"{path.name}: first line must say what it is for"
    assert any("prometheus " in line or "kubectl " in line for line in head), path.name


def test_local_config_is_valid_and_covers_the_port_range(promtool):
    result = check_config(promtool, LOCAL)
    assert result.returncode == 0, result.stdout + result.stderr
    config = yaml.safe_load(LOCAL.read_text())
    (job,) = config["scrape_configs"]
    targets = [t for sc in job["static_configs"] for t in sc["targets"]]
    ports = sorted(int(t.rsplit(":", 1)[1]) for t in targets)
    # A stage that finds the first port taken moves up to PORT_SPAN - 1 ports higher.
    assert ports == list(range(ports[0], ports[0] + PORT_SPAN))


def test_kubernetes_config_is_valid(promtool, tmp_path):
    config = yaml.safe_load(KUBERNETES.read_text())
    (job,) = config["scrape_configs"]
    assert job["kubernetes_sd_configs"] == [{"role": "pod"}]
    result = check_config(promtool, KUBERNETES)
    if "kubernetes_sd_configs not found" in result.stdout + result.stderr:
        # Debian builds Prometheus without Kubernetes discovery: check everything else
        # (relabel rules, intervals) with the discovery swapped for a static target.
        del job["kubernetes_sd_configs"]
        job["static_configs"] = [{"targets": ["127.0.0.1:9200"]}]
        path = tmp_path / "prometheus.yml"
        path.write_text(yaml.safe_dump(config))
        result = check_config(promtool, path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_kubernetes_config_and_podmonitor_select_the_same_pods():
    job = yaml.safe_load(KUBERNETES.read_text())["scrape_configs"][0]
    keep = {
        tuple(rule["source_labels"]): rule["regex"]
        for rule in job["relabel_configs"]
        if rule.get("action") == "keep"
    }
    label_meta = "__meta_kubernetes_pod_label_" + POD_LABEL[0].replace(".", "_").replace("/", "_")
    assert keep == {
        (label_meta,): POD_LABEL[1],
        ("__meta_kubernetes_pod_container_port_name",): PORT_NAME,
    }

    monitor = yaml.safe_load(PODMONITOR.read_text())
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["kind"] == "PodMonitor"
    assert monitor["spec"]["selector"]["matchLabels"] == {POD_LABEL[0]: POD_LABEL[1]}
    (endpoint,) = monitor["spec"]["podMetricsEndpoints"]
    assert endpoint["port"] == PORT_NAME and endpoint["path"] == "/metrics"


def test_podmonitor_selects_the_pods_the_kubernetes_launcher_renders():
    from audioflow.launch.base import JobSpec
    from audioflow.launch.k8s_settings import KubernetesSettings
    from audioflow.launch.manifests import render_job

    job = JobSpec(
        name="abcd1234-train-1",
        args=["run", "solver=compression/debug", "--stage", "train", "--epoch", "1"],
        labels={"sig": "abcd1234", "stage": "train", "epoch": "1"},
    )
    manifest = render_job(job, KubernetesSettings(metrics_port=9200))
    pod = manifest["spec"]["template"]
    selector = yaml.safe_load(PODMONITOR.read_text())["spec"]["selector"]["matchLabels"]
    assert selector.items() <= pod["metadata"]["labels"].items()
    (container,) = pod["spec"]["containers"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports[PORT_NAME] == 9200
    assert "monitoring.port=9200" in " ".join(container["command"])
