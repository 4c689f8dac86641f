"""`audioflow ls` as a table to compare XPs: metric columns, names, grids, filters, JSON."""

from __future__ import annotations

import json

import pytest

from audioflow.cli import main
from audioflow.config import get_xp, signatures


def run(capsys, *argv) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _finish(xp, mel: float, evaluate: dict | None = None, epochs: int = 2) -> None:
    """Write what a finished run leaves: history and best.json (metric mel)."""
    history = [{"epoch": e, "valid": {"mel": mel + 1.0 / e, "loss": 2.0}} for e in range(1, 3)]
    history = history[:epochs]
    if evaluate:
        history[-1]["evaluate"] = evaluate
    (xp.folder / "history.json").write_text(json.dumps(history))
    best = {"metric": "mel", "value": history[-1]["valid"]["mel"], "epoch": len(history)}
    (xp.folder / "best.json").write_text(json.dumps(best))


@pytest.fixture
def xps(cfg_dir):
    """Three XPs at several learning rates, one of them not finished."""
    a = get_xp(["optim.lr=0.5"], cfg_dir)
    b = get_xp(["optim.lr=0.2"], cfg_dir)
    c = get_xp(["optim.lr=0.2", "seed=9"], cfg_dir)
    _finish(a, 1.0, {"mel": 1.4, "sisnr": 3.0})
    _finish(b, 0.5, {"mel": 0.9, "sisnr": 5.0})
    _finish(c, 0.7, epochs=1)
    return a, b, c


def _rows(out: str) -> tuple[list[str], dict[str, list[str]]]:
    header, *lines = out.strip().splitlines()
    lines = [line for line in lines if not line.startswith("every XP above")]
    return header.split(), {line.split()[0]: line.split() for line in lines}


def test_default_columns_are_the_key_metric_on_valid_and_evaluate(capsys, xps):
    a, b, c = xps
    code, out, _ = run(capsys, "ls")
    header, rows = _rows(out)
    assert code == 0
    assert header == ["SIG", "STATUS", "EPOCH", "valid.mel", "evaluate.mel", "OVERRIDES"]
    assert rows[a.sig][1:5] == ["done", "2/2", "1.5", "1.4"]
    assert rows[c.sig][1:5] == ["partial", "1/2", "1.7", "-"]


def test_chosen_metrics_filters_and_sort(capsys, xps):
    a, b, c = xps
    columns = ["--metrics", "evaluate.sisnr,valid.loss"]
    code, out, _ = run(capsys, "ls", *columns, "--sort", "evaluate.sisnr")
    header, _ = _rows(out)
    assert header[3:5] == ["evaluate.sisnr", "valid.loss"]
    order = [line.split()[0] for line in out.strip().splitlines()[1:]]
    assert order == [a.sig, b.sig, c.sig]  # c has no evaluate: last either way
    code, out, _ = run(capsys, "ls", "--metrics", "evaluate.sisnr", "--sort=-evaluate.sisnr")
    assert [line.split()[0] for line in out.strip().splitlines()[1:]] == [b.sig, a.sig, c.sig]
    code, out, _ = run(capsys, "ls", "--where", "optim.lr=2e-1")
    rows = _rows(out)[1]
    assert sorted(rows) == sorted([b.sig, c.sig])
    # what both share is said once, under the table; the column shows what differs
    lines = {line.split()[0]: line for line in out.splitlines()}
    assert lines[b.sig].endswith("(only the shared ones)") and lines[c.sig].endswith(" seed=9")
    assert out.strip().splitlines()[-1] == "every XP above also has: optim.lr=0.2"
    code, out, _ = run(capsys, "ls", "--where", "optim.lr=0.2", "--where", "status=done")
    assert list(_rows(out)[1]) == [b.sig]
    code, out, err = run(capsys, "ls", "--where", "optim.lr=7")
    assert code == 0 and out == "" and "no XP matches optim.lr=7" in err


def test_json_is_strict_and_a_nan_run_is_failed_not_done(capsys, xps):
    a, _, _ = xps
    history = [{"epoch": e, "valid": {"mel": float("nan")}} for e in (1, 2)]
    (a.folder / "history.json").write_text(json.dumps(history))  # bare NaN, as json writes
    code, out, _ = run(capsys, "ls", "--json")
    rows = {row["sig"]: row for row in json.loads(out)}
    assert code == 0 and "NaN" not in out
    assert rows[a.sig]["status"] == "failed" and rows[a.sig]["metrics"]["valid.mel"] is None
    assert rows[a.sig]["overrides"] == ["optim.lr=0.5"] and rows[a.sig]["epochs"] == 2
    code, out, _ = run(capsys, "info", a.sig)
    assert "status     failed, epoch 2/2" in out and "not finite: valid.mel=nan at epoch 1" in out


def test_names_from_the_workflow_config_and_a_grid_with_xps_not_started(
    capsys, xps, cfg_dir, tmp_path
):
    a, b, _ = xps
    workflow = tmp_path / "workflow.yaml"
    workflow.write_text(
        f"config_dir: {cfg_dir}\nxps:\n  - {{name: fast, overrides: [optim.lr=0.5]}}\n"
    )
    code, out, _ = run(capsys, "ls", "--workflow", str(workflow))
    header, rows = _rows(out)
    assert header[:3] == ["SIG", "NAME", "STATUS"] and rows[a.sig][1] == "fast"
    assert rows[b.sig][1] == "-"
    grid = tmp_path / "lrs.yaml"
    grid.write_text("base: []\ngrid:\n  - product:\n      optim.lr: [0.2, 0.3]\n")
    expected = signatures([["optim.lr=0.2"], ["optim.lr=0.3"]], cfg_dir)
    code, out, _ = run(capsys, "ls", "--grid", str(grid), "--config-dir", str(cfg_dir))
    lines = out.strip().splitlines()[1:]
    assert [line.split()[:3] for line in lines] == [
        [expected[0], "lrs-0", "done"],
        [expected[1], "lrs-1", "not"],
    ]
    assert "not started" in lines[1]
    code, _, err = run(capsys, "ls", "--grid", str(tmp_path / "nope.yaml"))
    assert code == 2 and err.count("\n") == 1 and "nope.yaml" in err


def test_the_table_fits_100_columns(capsys, cfg_dir, monkeypatch):
    monkeypatch.setenv("COLUMNS", "100")
    long = [f"+note{i}=a_rather_long_value_{i}" for i in range(8)]
    xp = get_xp(long, cfg_dir)
    _finish(xp, 1.0, {"mel": 1.0})
    code, out, _ = run(capsys, "ls")
    assert code == 0 and max(len(line) for line in out.splitlines()) <= 100
    assert out.splitlines()[1].endswith("…")
