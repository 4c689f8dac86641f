"""The adversarial compression path: two OptimSchedulers, each on its own loss and modules."""

from __future__ import annotations

import pytest
import torch

from audioflow.config import compose
from audioflow.config.errors import ConfigError
from audioflow.config.xp import set_current_xp
from audioflow.models.builders import build_compression_model, build_discriminator

from .test_compression import make_corpus, make_solver


@pytest.fixture
def sources(tmp_path, monkeypatch):
    monkeypatch.setenv("AUDIOFLOW_XP_DIR", str(tmp_path / "xps"))
    yield make_corpus(tmp_path / "data")
    set_current_xp(None)


def _params(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.named_parameters()}


def test_gen_and_disc_optim_schedulers_train_their_own_modules(sources):
    solver = make_solver(
        [
            "solver=compression/gan_debug",
            "optim.epochs=1",
            "optim.updates_per_epoch=4",
            "generate.max_files=1",
            "dataset.evaluate.num_samples=8",
            *sources,
        ]
    )
    assert solver.optim_sches.names == ["gen", "disc"]
    codec = solver.codec
    before_disc = _params(codec.discriminator)
    before_dec = _params(codec.decoder)
    solver.run()
    gen, disc = solver.optim_sches["gen"], solver.optim_sches["disc"]
    assert gen.real_step == 4
    assert disc.real_step == 2  # step_per_update: 2
    after_disc, after_dec = _params(codec.discriminator), _params(codec.decoder)
    assert any(not torch.equal(before_disc[k], after_disc[k]) for k in before_disc)
    assert any(not torch.equal(before_dec[k], after_dec[k]) for k in before_dec)
    train = solver.history[-1]["train"]
    assert {"gen_loss", "disc_loss", "adv", "feat", "mel", "l1"} <= set(train)
    assert all(torch.isfinite(torch.tensor(v)) for v in train.values())


def test_generator_loss_puts_no_gradient_on_the_discriminator(sources):
    solver = make_solver(["solver=compression/gan_debug", *sources])
    solver.current_stage = "train"
    solver._set_mode(True)
    batch = next(iter(solver.dataloaders["train"]))
    metrics = solver.run_step(0, batch, {})
    metrics["gen_loss"].backward(retain_graph=True)
    disc = solver.codec.discriminator
    assert all(p.grad is None for p in disc.parameters())
    assert any(p.grad is not None for p in solver.codec.decoder.parameters())
    solver.codec.zero_grad(set_to_none=True)
    metrics["disc_loss"].backward()
    assert all(p.grad is None for p in solver.codec.encoder.parameters())
    assert any(p.grad is not None for p in disc.parameters())


def test_adversarial_losses_without_optim_sches_are_refused(sources):
    with pytest.raises(ConfigError, match="optim_sches"):
        make_solver(["solver=compression/debug", "losses.adv=1.0", *sources])


@pytest.mark.parametrize("name", ["debug", "gan_debug", "default"])
def test_every_shipped_config_builds_its_models(name):
    cfg = compose([f"solver=compression/{name}"])
    model = build_compression_model(cfg)
    x = torch.zeros(1, int(cfg.channels), int(cfg.sample_rate) // 10)
    model.eval()
    assert model(x).x.shape == x.shape
    if cfg.losses.adv > 0:
        logits, _ = build_discriminator(cfg)(x)
        assert logits
    assert model.total_codebooks == int(cfg.rvq.n_q)
