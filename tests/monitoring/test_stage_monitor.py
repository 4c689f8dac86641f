"""StageMonitor: what it serves, on which port, and when it stays inert."""

from __future__ import annotations

import socket
import subprocess
import sys
import urllib.error

import pytest
from prometheus_client.parser import text_string_to_metric_families

from audioflow.monitoring.facts import RunFacts
from audioflow.monitoring.stage import PORT_SPAN, StageMonitor

from .conftest import free_port, http_get


def samples(port: int) -> dict[tuple[str, frozenset], float]:
    """Scrape a monitor and index its samples by (name, labels)."""
    text = http_get(f"http://127.0.0.1:{port}/metrics")
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_import_does_not_load_prometheus_client():
    code = (
        "import sys, audioflow.monitoring.stage as s\n"
        "m = s.StageMonitor('abcd1234', 'train', rank=0, port=0, pushgateway=None)\n"
        "m.start(); m.update({'l1': 1.0}, {'g': 1e-3}, 4, 0.1, 0.0, 0.5, 10.0); m.finish(True)\n"
        "assert 'prometheus_client' not in sys.modules, 'inert monitor imported it'\n"
        "assert 'torch' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_running_monitor_serves_stage_metrics():
    port = free_port()
    facts = RunFacts(epochs=10, item_seconds=1.5, loss_names=frozenset({"l1", "msspec"}))
    monitor = StageMonitor("abcd1234", "train", rank=0, port=port, pushgateway=None, facts=facts)
    monitor.start()
    try:
        assert monitor.port == port
        monitor.set_epoch(3)
        monitor.update({"l1": 0.5, "msspec": 2.0}, {"generator": 1e-3}, 8, 0.2, 0.05, 0.25, 30.0)
        metrics = {"l1": 0.25, "msspec": 1.5, "sisnr": -3.0, "lr/disc": 2e-4, "grad_norm/disc": 4}
        monitor.update(metrics, {"generator": 5e-4}, 8, 0.3, 0.05, 0.5, 20.0)
        monitor.skipped_update()
        monitor.checkpoint_written(1.5)
        got = samples(port)
    finally:
        monitor.finish(success=True)
    base = {("signature", "abcd1234"), ("stage", "train"), ("rank", "0")}

    def value(name, **extra):
        return got[(name, frozenset(base | set(extra.items())))]

    assert value("audioflow_updates_total") == 2
    assert value("audioflow_items_total") == 16
    assert value("audioflow_audio_seconds_total") == 16 * 1.5
    assert value("audioflow_skipped_updates_total") == 1
    assert value("audioflow_loss", loss="l1") == 0.25
    assert value("audioflow_loss", loss="msspec") == 1.5
    assert value("audioflow_learning_rate", optimizer="generator") == 5e-4
    # the solver core's keys and the quality metrics leave the loss family
    assert value("audioflow_learning_rate", optimizer="disc") == 2e-4
    assert value("audioflow_grad_norm", optimizer="disc") == 4
    assert value("audioflow_metric", metric="sisnr") == -3.0
    assert not any(n == "audioflow_loss" and ("loss", "sisnr") in labels for n, labels in got)
    assert value("audioflow_epochs") == 10
    assert value("audioflow_update_duration_seconds_count") == 2
    assert value("audioflow_update_duration_seconds_sum") == pytest.approx(0.5)
    assert value("audioflow_update_duration_seconds_bucket", le="0.25") == 1
    assert value("audioflow_data_wait_seconds_total") == pytest.approx(0.1)
    assert value("audioflow_epoch") == 3
    assert value("audioflow_progress_ratio") == 0.5
    assert value("audioflow_eta_seconds") == 20
    assert value("audioflow_checkpoint_write_duration_seconds_count") == 1
    assert got[("process_resident_memory_bytes", frozenset())] > 10e6
    build = [labels for n, labels in got if n == "audioflow_build_info"]
    assert dict(build[0])["version"] and dict(build[0])["git_commit"]
    assert value("audioflow_stage_start_time_seconds") > 1.7e9
    # Only the bounded label set ever appears.
    allowed = {"signature", "stage", "rank", "loss", "metric", "optimizer", "le", "device"}
    allowed |= {"version", "git_commit"}
    assert all({k for k, _ in labels} <= allowed for _, labels in got)


def test_finish_stops_serving_and_marks_completion():
    port = free_port()
    monitor = StageMonitor("abcd1234", "valid", rank=0, port=port, pushgateway=None)
    monitor.start()
    monitor.update({"l1": 1.0}, {}, 4, 0.1, 0.0, 0.4, 60.0)
    monitor.finish(success=True)
    gauges = {s.name: s.value for f in monitor.registry.collect() for s in f.samples}
    assert gauges["audioflow_progress_ratio"] == 1.0
    assert gauges["audioflow_eta_seconds"] == 0.0
    with pytest.raises(urllib.error.URLError):
        http_get(f"http://127.0.0.1:{port}/metrics", timeout=2)


def test_taken_port_moves_to_the_next_one():
    port = free_port()
    first = StageMonitor("abcd1234", "train", rank=0, port=port, pushgateway=None)
    second = StageMonitor("abcd1234", "valid", rank=0, port=port, pushgateway=None)
    first.start()
    second.start()
    try:
        assert second.port is not None and port < second.port < port + PORT_SPAN
        # Separate registries: each port serves its own stage only.
        served = samples(second.port)
        stages = {dict(labels).get("stage") for name, labels in served if "process_" not in name}
        assert stages == {"valid"}
    finally:
        first.finish(success=True)
        second.finish(success=True)


def test_no_free_port_keeps_training_without_metrics(caplog):
    # Occupy a whole range so the monitor cannot bind any port of it.
    socks, start = [], None
    for _ in range(50):
        start = free_port()
        try:
            for p in range(start, start + PORT_SPAN):
                s = socket.socket()
                s.bind(("0.0.0.0", p))
                s.listen()
                socks.append(s)
            break
        except OSError:
            for s in socks:
                s.close()
            socks = []
    try:
        monitor = StageMonitor("abcd1234", "train", rank=0, port=start, pushgateway=None)
        monitor.start()
        monitor.update({"l1": 1.0}, {}, 1, 0.1, 0.0, 0.1, 1.0)
        monitor.finish(success=True)
    finally:
        for s in socks:
            s.close()
    assert monitor.port is None
    assert f"monitoring.port={start}" in caplog.text


@pytest.mark.parametrize("rank,port", [(1, 9200), (0, 0)])
def test_inert_monitor_serves_nothing(rank, port):
    monitor = StageMonitor("abcd1234", "train", rank=rank, port=port, pushgateway=None)
    monitor.start()
    monitor.update({"l1": 1.0}, {"g": 1.0}, 1, 0.1, 0.0, 0.1, 1.0)
    monitor.finish(success=True)
    assert not monitor.active and monitor.registry is None and monitor.port is None


def test_port_search_stops_at_65535(caplog):
    """A search that would run past the last port keeps training without metrics."""
    blocker = socket.socket()
    try:
        blocker.bind(("0.0.0.0", 65535))
        blocker.listen()
    except OSError:
        pytest.skip("port 65535 is in use on this machine")
    try:
        monitor = StageMonitor("abcd1234", "train", rank=0, port=65535, pushgateway=None)
        monitor.start()
        monitor.finish(success=True)
    finally:
        blocker.close()
    assert monitor.port is None
    assert "no free port in 65535-65535" in caplog.text


def test_losses_and_metrics_are_told_apart_by_config_and_name():
    facts = RunFacts(loss_names=frozenset({"l1", "mel", "commitment"}))
    losses = ["l1", "mel", "commitment", "gen_loss", "disc_loss", "ce", "ce_q0", "ctc_loss"]
    metrics = ["sisnr", "mel_distance", "bandwidth", "codebook_usage_0", "ppl", "wer", "cer"]
    assert [n for n in losses + metrics if facts.is_loss(n)] == losses
