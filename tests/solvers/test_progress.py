"""The progress bar shows a few key metrics and stays a bar at 100 columns."""

from __future__ import annotations

from types import SimpleNamespace

from tqdm import tqdm

from audioflow.solvers.logs import format_metrics, key_metrics, progress_keys

# What the compression solver's train step reports: 15 metrics.
METRICS = {
    "gen_loss": 13.69,
    "l1": 0.2569,
    "mel": 37.04,
    "commitment": 0.00603,
    "bandwidth": 9.0,
    "sisnr": -65.08,
    "mel_distance": 4.52,
    **{f"codebook_usage_{i}": 0.6 for i in range(4)},
    **{f"dead_codes_replaced_{i}": 5.0 for i in range(4)},
    "lr/main": 3e-3,
}


class Declared:
    progress_metrics = ("gen_loss", "sisnr")
    cfg = SimpleNamespace(best={"metric": None})

    def best_metric(self):
        return "mel_distance"


def bar_line(postfix: str) -> str:
    return tqdm.format_meter(
        57, 80, 12.3, ncols=100, prefix="train 1/2", unit="step", postfix=postfix
    )


def test_declared_metrics_and_the_best_metric_are_shown():
    keys = progress_keys(Declared())
    assert keys == ("gen_loss", "sisnr", "mel_distance")
    shown = key_metrics(METRICS, keys)
    assert list(shown) == ["gen_loss", "sisnr", "mel_distance"]
    line = bar_line(format_metrics(shown).replace(" | ", " "))
    assert len(line) <= 100
    assert "mel_distance=4.52" in line and "█" in line  # the metric whole, the bar drawn


def test_a_configured_best_metric_wins_and_undeclared_solvers_show_losses_first():
    solver = Declared()
    solver.cfg = SimpleNamespace(best={"metric": "sisnr"})
    assert progress_keys(solver) == ("gen_loss", "sisnr")
    assert list(key_metrics({"sisnr": 1.0, "gen_loss": 2.0, "l1": 3.0, "mel": 4.0})) == [
        "gen_loss",
        "sisnr",
        "l1",
    ]
    assert progress_keys(object()) == ()


def test_all_metrics_would_not_fit():
    # what the bar looked like before: the key metric cut, no bar left
    line = bar_line(format_metrics(METRICS))
    assert "█" not in line


def test_the_averager_keeps_the_latest_learning_rate():
    import torch

    from audioflow.solvers.logs import Averager

    avg = Averager()
    for step in range(1, 5):
        avg.add({"loss": torch.tensor(float(step)), "lr/main": 1e-3 / step, "grad_norm/main": 2.0})
    state = avg.state_dict()
    again = Averager()
    again.load_state_dict(state)
    for result in (avg.result(), again.result()):
        assert result["loss"] == 2.5 and result["grad_norm/main"] == 2.0
        assert result["lr/main"] == 1e-3 / 4
