"""The Grafana dashboard only queries metrics that exist."""

from __future__ import annotations

import json
import re

import pytest

from audioflow.monitoring.metrics import StageMetrics

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
    used = set().union(*(metric_names(e) for e in dashboard_exprs()))
    unknown = used - exported - DCGM_DEFAULTS
    assert not unknown, f"dashboard queries metrics nobody exports: {sorted(unknown)}"
    # The dashboard covers what the issue asks for.
    for name in (
        "audioflow_loss",
        "audioflow_learning_rate",
        "audioflow_samples_total",
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
