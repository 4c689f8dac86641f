"""The shipped alert rules: valid, unit-tested by promtool, and the same for the Operator."""

from __future__ import annotations

import subprocess

import yaml

from .conftest import MONITORING_DIR

RULES = MONITORING_DIR / "alert-rules.yml"


def test_promtool_unit_tests_of_the_alert_rules_pass(promtool):
    result = subprocess.run(
        [promtool, "test", "rules", "alert-rules.test.yml"],
        cwd=MONITORING_DIR,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_promtool_checks_the_rules(promtool):
    result = subprocess.run(
        [promtool, "check", "rules", str(RULES)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_has_a_unit_test():
    alerts = {r["alert"] for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"]}
    assert alerts == {
        "AudioflowTrainingStalled",
        "AudioflowSkippedUpdates",
        "AudioflowStageFailed",
        "AudioflowGpuMemoryNearFull",
    }
    tests = yaml.safe_load((MONITORING_DIR / "alert-rules.test.yml").read_text())["tests"]
    tested = {
        case["alertname"] for t in tests for case in t["alert_rule_test"] if case["exp_alerts"]
    }
    assert tested == alerts


def test_the_prometheusrule_carries_the_same_groups():
    operator = yaml.safe_load((MONITORING_DIR / "prometheusrule.yaml").read_text())
    assert operator["kind"] == "PrometheusRule"
    assert operator["spec"] == yaml.safe_load(RULES.read_text())
