"""The Grafana dashboard only queries metrics that exist."""

from __future__ import annotations

import json
import re

import pytest

from audioflow.monitoring.metrics import StageMetrics, sample_names
from audioflow.monitoring.pushgateway import summary_registry

from .conftest import MONITORING_DIR

DASHBOARD = MONITORING_DIR / "grafana-dashboard.json"

# DCGM exporter metrics the dashboard relies on; all are in the exporter's default
# counter set (etc/default-counters.csv of NVIDIA/dcgm-exporter).
DCGM_DEFAULTS = {
    "DCGM_FI_DEV_GPU_UTIL",  # GPU utilisation, %
    "DCGM_FI_DEV_FB_USED",  # framebuffer memory used, MiB
    "DCGM_FI_DEV_FB_FREE",  # framebuffer memory free, MiB
}

_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "offset"}
_KEYWORDS |= {"and", "or", "unless", "inf", "nan"}
_LABEL_LISTS = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_IDENT = re.compile(r"(?<![\w.:])[A-Za-z_:][A-Za-z0-9_:]*")


def metric_names(expr: str) -> set[str]:
    """Metric names a PromQL expression selects.

    Label matchers, label lists, ranges, strings and Grafana variables are removed first;
    an identifier left that is not followed by ``(`` (a function) nor a keyword is a metric.
    """
    expr = re.sub(r'"(?:\\.|[^"\\])*"', '""', expr)
    expr = re.sub(r"\{[^}]*\}", "", expr)
    expr = re.sub(r"\[[^\]]*\]", "", expr)
    expr = _LABEL_LISTS.sub("", expr)
    expr = re.sub(r"\$\{?\w+\}?", "", expr)
    names = set()
    for match in _IDENT.finditer(expr):
        rest = expr[match.end() :].lstrip()
        if match.group() not in _KEYWORDS and not rest.startswith("("):
            names.add(match.group())
    return names


def panels() -> list[dict]:
    """The dashboard's panels, rows left out."""
    return [p for p in json.loads(DASHBOARD.read_text())["panels"] if p["type"] != "row"]


def dashboard_exprs() -> list[str]:
    """Every PromQL expression of the dashboard: panel targets and variable queries."""
    dash = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in dash["panels"] for t in p.get("targets", [])]
    for var in dash["templating"]["list"]:
        if var["type"] == "query":
            # label_values(METRIC{...}, label): the metric is the first argument.
            inner = re.fullmatch(r"label_values\((.*),\s*\w+\)", var["query"]["query"])
            exprs.append(inner.group(1))
    return exprs


def test_extractor_finds_metrics_and_ignores_promql_syntax():
    expr = (
        'sum by (signature, le) (rate(audioflow_x_bucket{stage=~"$stage"}[$__rate_interval]))'
        " / on (pod) group_left (sig) max(DCGM_Y) * 1048576 + bogus_metric offset 5m"
    )
    assert metric_names(expr) == {"audioflow_x_bucket", "DCGM_Y", "bogus_metric"}


def test_every_dashboard_metric_is_exported():
    exported = StageMetrics("abcd1234", "train", 0).exported_names()
    exported |= sample_names(summary_registry(1.0, True, 0.0).collect())  # the Pushgateway's
    used = set().union(*(metric_names(e) for e in dashboard_exprs()))
    unknown = used - exported - DCGM_DEFAULTS
    assert not unknown, f"dashboard queries metrics nobody exports: {sorted(unknown)}"
    # The dashboard covers what the issue asks for.
    for name in (
        "audioflow_loss",
        "audioflow_metric",
        "audioflow_learning_rate",
        "audioflow_grad_norm",
        "audioflow_items_total",
        "audioflow_audio_seconds_total",
        "audioflow_epochs",
        "audioflow_stage_success",
        "process_resident_memory_bytes",
        "process_cpu_seconds_total",
        "audioflow_eta_seconds",
        "audioflow_skipped_updates_total",
        "DCGM_FI_DEV_GPU_UTIL",
        "DCGM_FI_DEV_FB_USED",
    ):
        assert name in used, f"no dashboard panel shows {name}"


def test_dashboard_is_importable():
    dash = json.loads(DASHBOARD.read_text())
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    names = {v["name"] for v in dash["templating"]["list"]}
    assert {"datasource", "signature", "stage"} <= names
    for panel in dash["panels"]:
        if panel["type"] == "row":
            continue
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        assert panel["targets"], f"panel {panel['title']!r} has no query"
        for target in panel["targets"]:
            assert 'signature=~"$signature"' in target["expr"], panel["title"]


@pytest.mark.parametrize("expr", dashboard_exprs())
def test_dashboard_queries_select_a_metric(expr):
    assert metric_names(expr), f"no metric in {expr!r}"


def test_every_panel_has_a_unit_and_queries_the_datasource_variable():
    for panel in panels():
        unit = panel["fieldConfig"]["defaults"].get("unit")
        assert unit and unit != "none", f"panel {panel['title']!r} has no unit"
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "${datasource}", panel["title"]
    durations = [p for p in panels() if "ETA" in p["title"] or "duration" in p["title"]]
    assert {p["fieldConfig"]["defaults"]["unit"] for p in durations} <= {"s", "dtdurations"}


def test_losses_and_metrics_have_panels_of_their_own():
    by_metric = {}
    for panel in panels():
        for expr in (t["expr"] for t in panel["targets"]):
            for name in metric_names(expr):
                by_metric.setdefault(name, set()).add(panel["title"])
    (loss_panel,) = by_metric["audioflow_loss"]
    (metric_panel,) = by_metric["audioflow_metric"]
    assert loss_panel != metric_panel
    repeats = {p["title"]: p.get("repeat") for p in panels()}
    assert repeats[loss_panel] == "loss" and repeats[metric_panel] == "metric"


def test_gpu_panels_join_every_pod_of_the_job():
    # rank 0 alone serves audioflow metrics: a join on its pod would drop the other nodes
    for panel in panels():
        for expr in (t["expr"] for t in panel["targets"]):
            if "DCGM_" in expr:
                assert "on (namespace, job_name)" in expr and "on (namespace, pod)" not in expr
