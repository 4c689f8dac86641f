"""A real Prometheus scrapes a short training run and answers queries about it."""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import subprocess
import time

import pytest

from audioflow.monitoring.facts import RunFacts
from audioflow.monitoring.stage import StageMonitor

from .conftest import REPO, free_port, http_get, prom_query
from .test_dashboard import dashboard_exprs

SIG = "0c0ffee0"
UPDATES = 12
BATCH = 4
# The user solver of the solver tests: a small regression MLP on synthetic tensors.
USER_SOLVER = REPO / "tests" / "solvers" / "user_config"


def train(monitor: StageMonitor) -> float:
    """Fit a tiny regression with Adam, reporting every update; returns the last loss."""
    import torch

    torch.manual_seed(0)
    model = torch.nn.Linear(8, 1)
    optim = torch.optim.Adam(model.parameters(), lr=1e-2)
    sched = torch.optim.lr_scheduler.LambdaLR(optim, lambda step: 1.0 / (1 + step))
    data = [(torch.randn(BATCH, 8), torch.randn(BATCH, 1)) for _ in range(UPDATES)]
    monitor.set_epoch(1)
    begin = time.monotonic()
    for i, (x, y) in enumerate(data):
        start = time.monotonic()
        loss = torch.nn.functional.mse_loss(model(x), y)
        optim.zero_grad()
        loss.backward()
        optim.step()
        sched.step()
        done = (i + 1) / UPDATES
        elapsed = time.monotonic() - begin
        monitor.update(
            losses={"mse": loss.item()},
            lrs={"main": sched.get_last_lr()[0]},
            samples=BATCH,
            update_seconds=time.monotonic() - start,
            data_wait_seconds=0.0,
            progress=done,
            eta_seconds=elapsed / done * (1 - done),
        )
    return loss.item()


def wait_for(base_url: str, query: str, expected: float, timeout: float = 30.0) -> float:
    """Poll an instant query until its single value equals ``expected``."""
    deadline = time.monotonic() + timeout
    value = None
    while time.monotonic() < deadline:
        result = prom_query(base_url, query)["result"]
        if result:
            value = float(result[0]["value"][1])
            if value == pytest.approx(expected, rel=1e-6):
                return value
        time.sleep(0.5)
    pytest.fail(f"{query} = {value}, expected {expected} within {timeout} s")


def wait_for_first_scrape(base_url: str, timeout: float = 30.0) -> None:
    """Wait until Prometheus has tried its target once (up or down).

    Prometheus hands new targets to its scrapers in batches up to 5 s apart, so a run that
    starts right after Prometheus could end before its first scrape.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        targets = json.loads(http_get(f"{base_url}/api/v1/targets"))["data"]["activeTargets"]
        if targets and all(t["health"] != "unknown" for t in targets):
            return
        time.sleep(0.2)
    pytest.fail(f"Prometheus did not scrape its target within {timeout} s")


def grafana_to_promql(expr: str) -> str:
    """Replace Grafana's dashboard variables by what Grafana would send."""
    expr = expr.replace("$__rate_interval", "1m").replace("$__range", "5m")
    return re.sub(r"\$\{?\w+\}?", ".*", expr)


def test_prometheus_reads_back_loss_and_update_counters(start_prometheus):
    port = free_port()
    facts = RunFacts(loss_names=frozenset({"mse"}))
    monitor = StageMonitor(SIG, "train", rank=0, port=port, pushgateway=None, facts=facts)
    monitor.start()
    try:
        prometheus = start_prometheus(port)
        last_loss = train(monitor)
        sel = f'signature="{SIG}",stage="train",rank="0"'
        wait_for(prometheus, f"audioflow_updates_total{{{sel}}}", UPDATES)
        wait_for(prometheus, f"audioflow_items_total{{{sel}}}", UPDATES * BATCH)
        wait_for(prometheus, f'audioflow_loss{{{sel},loss="mse"}}', last_loss)
        wait_for(prometheus, f"audioflow_progress_ratio{{{sel}}}", 1.0)
        wait_for(prometheus, f'up{{job="audioflow",instance="127.0.0.1:{port}"}}', 1.0)
        lr = prom_query(prometheus, f'audioflow_learning_rate{{{sel},optimizer="main"}}')
        assert float(lr["result"][0]["value"][1]) == pytest.approx(1e-2 / (1 + UPDATES))
        # Every dashboard query parses and runs on this Prometheus.
        answers = {}
        for expr in dashboard_exprs():
            data = prom_query(prometheus, grafana_to_promql(expr))
            assert data["resultType"] == "vector", expr
            answers[expr] = data["result"]
        (loss_panel,) = (
            r for e, r in answers.items() if e.startswith("audioflow_loss{") and "$loss" in e
        )
        # process_* series reach the panels through the join on the stage's labels
        (memory,) = (r for e, r in answers.items() if e.startswith("process_resident"))
        assert [s["metric"]["signature"] for s in memory] == [SIG]
        assert [s["metric"]["loss"] for s in loss_panel] == ["mse"]
    finally:
        monitor.finish(success=True)


def test_prometheus_scrapes_a_real_audioflow_run(start_prometheus, tmp_path):
    """`audioflow run` of the solver tests' user solver, scraped four times a second."""
    from audioflow.config import signature

    user_dir = tmp_path / "user_config"
    shutil.copytree(USER_SOLVER, user_dir, ignore=shutil.ignore_patterns("__pycache__"))
    # ~2 s of updates on an idle machine: several scrapes at 4 per second.
    overrides = ["solver=my_solver", "optim.epochs=1", "optim.updates_per_epoch=4000"]
    port = free_port()
    env = dict(
        os.environ,
        PATH=f"{REPO / '.venv' / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}",
        PYTHONPATH=str(user_dir),
        OMP_NUM_THREADS="1",
        AUDIOFLOW_XP_DIR=str(tmp_path / "xps"),
    )
    prometheus = start_prometheus(port, scrape_interval="250ms")
    wait_for_first_scrape(prometheus)
    run = subprocess.run(
        ["audioflow", "run", *overrides, "--config-dir", str(user_dir), "--stage", "train"]
        + ["--epoch", "1", f"monitoring.port={port}"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    sig = signature(overrides, config_dir=user_dir)
    sel = f'signature="{sig}",stage="train",rank="0"'
    updates = prom_query(prometheus, f"max_over_time(audioflow_updates_total{{{sel}}}[10m])")
    assert updates["result"], f"Prometheus never scraped the run; its log:\n{run.stderr[-2000:]}"
    assert 0 < float(updates["result"][0]["value"][1]) <= 4000
    loss = prom_query(prometheus, f'last_over_time(audioflow_loss{{{sel},loss="loss"}}[10m])')
    assert math.isfinite(float(loss["result"][0]["value"][1]))


def test_prometheus_scrapes_the_demo_codec(start_prometheus, tmp_path):
    """The demo codec's run: losses and quality metrics apart, audio seconds, LR samples."""
    from audioflow.config import compose, signature
    from audioflow.data.manifest import build_manifest
    from audioflow.data.synth import write_corpus

    sources = []
    for split, seed in (("train", 1), ("valid", 2), ("evaluate", 3)):
        write_corpus(tmp_path / split, 8, seed)
        build_manifest([tmp_path / split], tmp_path / split / "m.jsonl.gz", workers=1)
        sources.append(f"datasource.{split}={tmp_path / split / 'm.jsonl.gz'}")
    sources.append(f"datasource.generate={tmp_path / 'evaluate' / 'm.jsonl.gz'}")
    overrides = ["solver=compression/debug", "optim.epochs=1", "optim.updates_per_epoch=20"]
    overrides += sources
    port = free_port()
    env = dict(
        os.environ,
        PATH=f"{REPO / '.venv' / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}",
        OMP_NUM_THREADS="1",
        AUDIOFLOW_XP_DIR=str(tmp_path / "xps"),
    )
    prometheus = start_prometheus(port, scrape_interval="250ms")
    wait_for_first_scrape(prometheus)
    run = subprocess.run(
        ["audioflow", "run", *overrides, "--stage", "train", "--epoch", "1"]
        + [f"monitoring.port={port}"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    assert f"Prometheus metrics of {signature(overrides)}/train on port {port}" in run.stderr
    sel = f'signature="{signature(overrides)}",stage="train"'

    def last(query: str) -> dict[str, float]:
        result = prom_query(prometheus, f"last_over_time({query}[10m])")["result"]
        return {json.dumps(r["metric"], sort_keys=True): float(r["value"][1]) for r in result}

    losses = {json.loads(k)["loss"] for k in last(f"audioflow_loss{{{sel}}}")}
    metrics = {json.loads(k)["metric"] for k in last(f"audioflow_metric{{{sel}}}")}
    assert {"gen_loss", "l1", "mel"} <= losses and {"sisnr", "mel_distance"} <= metrics
    assert not losses & metrics
    (seconds,) = last(f"audioflow_audio_seconds_total{{{sel}}}").values()
    (items,) = last(f"audioflow_items_total{{{sel}}}").values()
    assert seconds == pytest.approx(items * 1.0) and items > 0  # 1 s segments
    assert list(last(f"audioflow_build_info{{{sel}}}").values()) == [1.0]
    assert list(last(f"audioflow_epochs{{{sel}}}").values()) == [1.0]
    lrs = last(f"audioflow_learning_rate{{{sel}}}")  # from the solver core's lr/main
    assert [json.loads(k)["optimizer"] for k in lrs] == ["main"]
    configured = float(compose(overrides).optim.lr)  # the debug recipe keeps its LR flat
    assert list(lrs.values()) == [pytest.approx(configured)]
    (norm,) = last(f'audioflow_grad_norm{{{sel},optimizer="main"}}').values()
    assert norm > 0
