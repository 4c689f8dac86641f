"""The end-of-stage summary reaches a real Pushgateway."""

from __future__ import annotations

import time

from prometheus_client.parser import text_string_to_metric_families

from audioflow.monitoring.pushgateway import push_stage_summary
from audioflow.monitoring.stage import StageMonitor

from .conftest import free_port, http_get


def pushed(url: str, sig: str) -> dict[str, float]:
    """The audioflow_stage_* samples the Pushgateway holds for one signature."""
    text = http_get(url + "/metrics")
    return {
        s.name: s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name.startswith("audioflow_stage_") and s.labels.get("signature") == sig
    }


def test_stage_summary_is_pushed_and_failure_keeps_last_success(pushgateway):
    before = time.time()
    monitor = StageMonitor("feed1234", "train", rank=0, port=0, pushgateway=pushgateway)
    monitor.start()
    time.sleep(0.05)
    monitor.finish(success=True)
    first = pushed(pushgateway, "feed1234")
    assert first["audioflow_stage_success"] == 1
    assert first["audioflow_stage_duration_seconds"] >= 0.05
    assert first["audioflow_stage_last_success_timestamp_seconds"] >= before

    failed = StageMonitor("feed1234", "train", rank=0, port=0, pushgateway=pushgateway)
    failed.start()
    failed.finish(success=False)
    second = pushed(pushgateway, "feed1234")
    assert second["audioflow_stage_success"] == 0
    assert (
        second["audioflow_stage_last_success_timestamp_seconds"]
        == first["audioflow_stage_last_success_timestamp_seconds"]
    )


def test_unreachable_pushgateway_is_a_warning_not_an_error(caplog):
    url = f"http://127.0.0.1:{free_port()}"
    assert not push_stage_summary(url, "feed1234", "valid", 1.0, True, time.time(), timeout=2)
    assert "could not push the valid stage summary" in caplog.text


def test_malformed_pushgateway_address_never_fails_the_stage(caplog):
    for url in ("http://pushgateway:909l", "http://[::1"):
        assert not push_stage_summary(url, "feed1234", "valid", 1.0, True, time.time(), timeout=2)
    assert caplog.text.count("could not push the valid stage summary") == 2
