"""`promtool check metrics` accepts what a running stage serves."""

from __future__ import annotations

import subprocess

from audioflow.monitoring.facts import RunFacts
from audioflow.monitoring.stage import StageMonitor

from .conftest import free_port, http_get


def lint(promtool: str, text: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [promtool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=60
    )


def test_promtool_accepts_a_scrape_of_a_running_stage(promtool):
    port = free_port()
    facts = RunFacts(epochs=2, item_seconds=1.0, loss_names=frozenset({"l1", "msspec"}))
    monitor = StageMonitor("abcd1234", "train", rank=0, port=port, pushgateway=None, facts=facts)
    monitor.start()
    try:
        monitor.set_epoch(1)
        metrics = {"l1": 0.5, "msspec": 1.0, "sisnr": 2.0, "lr/disc": 1e-4, "grad_norm/disc": 3.0}
        monitor.update(metrics, {"generator": 3e-4}, 16, 0.2, 0.01, 0.1, 90.0)
        monitor.skipped_update()
        monitor.checkpoint_written(0.4)
        text = http_get(f"http://127.0.0.1:{port}/metrics")
    finally:
        monitor.finish(success=True)
    for family in ("audioflow_loss{", "audioflow_metric{", "audioflow_grad_norm{"):
        assert family in text
    assert "audioflow_audio_seconds_total{" in text and "process_cpu_seconds_total " in text
    result = lint(promtool, text)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == "", f"promtool lint findings:\n{result.stdout}"


def test_promtool_rejects_a_badly_named_counter(promtool):
    # Guards the test above: promtool's linter does flag convention breaks.
    bad = "# HELP jobs_done Jobs.\n# TYPE jobs_done counter\njobs_done 1\n"
    result = lint(promtool, bad)
    assert result.returncode != 0 and "_total" in result.stdout + result.stderr
