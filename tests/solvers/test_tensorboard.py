"""What TensorBoard shows of a short compression run, read back from its event files."""

from __future__ import annotations

import json

import pytest

from audioflow.config.xp import set_current_xp

from .test_compression import make_corpus, make_solver

# Two epochs of 4 updates, logged every 2: seconds on 2 cores.
SHORT = [
    "optim.epochs=2",
    "optim.updates_per_epoch=4",
    "logging.log_updates=2",
    "logging.log_tensorboard=true",
    "dataset.valid.num_samples=8",
    "dataset.evaluate.num_samples=8",
    "generate.every=1",
]


def read_events(folder):
    """Every tag of the run's event files: scalars (tag -> [(step, value)]), audio, images."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(folder / "tensorboard"), size_guidance={"scalars": 0, "images": 0})
    acc.Reload()
    tags = acc.Tags()
    scalars = {t: [(e.step, e.value) for e in acc.Scalars(t)] for t in tags["scalars"]}
    return acc, tags, scalars


@pytest.fixture(scope="module", params=["compression/debug", "compression/gan_debug"])
def run(request, tmp_path_factory):
    """A short run of the demo codec (one optimizer) and of the GAN (two OptimSchedulers)."""
    root = tmp_path_factory.mktemp("tensorboard")
    sources = make_corpus(root / "data")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AUDIOFLOW_XP_DIR", str(root / "xps"))
        solver = make_solver([f"solver={request.param}", *SHORT, *sources])
        solver.run()
    set_current_xp(None)
    return request.param, solver.folder, read_events(solver.folder)


def test_epoch_metrics_are_at_the_update_step(run):
    _, folder, (_, _, scalars) = run
    # valid E at the update that ended epoch E (4 updates per epoch), beside the epoch
    assert [s for s, _ in scalars["valid/mel_distance"]] == [4, 8]
    assert scalars["epoch"][-1] == (8, 2.0)
    history = json.loads((folder / "history.json").read_text())
    assert scalars["valid/mel_distance"][-1][1] == pytest.approx(
        history[-1]["valid"]["mel_distance"], rel=1e-5
    )
    # per-update train scalars overlay on the same axis
    assert [s for s, _ in scalars["train/gen_loss"]] == [2, 4, 6, 8]


def test_throughput(run):
    _, _, (_, _, scalars) = run
    rates = scalars["throughput/updates_per_second"]
    assert rates and all(v > 0 for _, v in rates)
    audio = scalars["throughput/audio_seconds_per_second"]
    # 8 items of 1 s of audio per update
    assert audio[-1][1] == pytest.approx(8 * rates[-1][1], rel=1e-6)
    # the share of each logged window the loop spent waiting for batches
    waits = scalars["throughput/data_wait_share"]
    assert waits and all(0.0 <= v < 1.0 for _, v in waits)


def test_learning_rate_and_grad_norm_of_every_optimizer(run):
    # the solver core adds lr/<opt> and grad_norm/<opt> to each update's metrics
    name, _, (_, _, scalars) = run
    optimizers = ["main"] if name == "compression/debug" else ["gen", "disc"]
    for opt in optimizers:
        lrs = scalars[f"optim/lr/{opt}"]
        assert [s for s, _ in lrs] == [2, 4, 6, 8]
        assert all(v > 0 for _, v in lrs)
        assert all(v >= 0 for _, v in scalars[f"optim/grad_norm/{opt}"])


def test_generate_audio_spectrograms_and_hparams(run):
    _, folder, (acc, tags, _) = run
    wavs = sorted(p.stem for p in (folder / "samples" / "epoch_2").glob("*.wav"))
    assert wavs and sorted(t.removeprefix("generate/") for t in tags["audio"]) == wavs
    assert {e.step for t in tags["audio"] for e in acc.Audio(t)} == {4, 8}
    image = acc.Images(tags["images"][0])[-1]
    assert image.encoded_image_string[:4] == b"\x89PNG" and image.width > 100
    # the HPARAMS tab: a session whose hyperparameters are the XP's delta
    from tensorboard.plugins.hparams import plugin_data_pb2

    content = acc.PluginTagToContent("hparams")["_hparams_/session_start_info"]
    start = plugin_data_pb2.HParamsPluginData.FromString(content).session_start_info
    hparams = {k: v.string_value or v.number_value for k, v in start.hparams.items()}
    assert hparams["optim.updates_per_epoch"] == 4
    assert hparams["signature"] == folder.name


def test_per_update_history_file(run):
    _, folder, (_, _, scalars) = run
    rows = [json.loads(line) for line in (folder / "updates.jsonl").read_text().splitlines()]
    assert [r["update"] for r in rows] == [2, 4, 6, 8]
    assert rows[-1]["gen_loss"] == pytest.approx(scalars["train/gen_loss"][-1][1], rel=1e-6)


def test_optimizer_keys_go_under_optim(tmp_path):
    """The keys of the loop's contract (``lr/<opt>[/<group>]``, ``grad_norm/<opt>``)."""
    from audioflow.solvers.tensorboard import RunFacts, TensorBoard

    board = TensorBoard(tmp_path, True, RunFacts(updates_per_epoch=10))
    for step in (5, 10):
        metrics = {"loss": 1.0 / step, "lr/gen/encoder": 1e-3 * step, "grad_norm/gen": 2.0}
        board.add("train_updates", metrics, step)
    board.add_timing(update_seconds=3.0, data_wait_seconds=1.0)
    board.add("train_updates", {"loss": 0.05}, 20)
    board.add("valid", {"loss": 0.2}, 2)
    board.close()
    _, _, scalars = read_events(tmp_path)
    assert scalars["optim/lr/gen/encoder"] == [(5, pytest.approx(5e-3)), (10, pytest.approx(1e-2))]
    assert [s for s, _ in scalars["optim/grad_norm/gen"]] == [5, 10]
    assert scalars["throughput/data_wait_share"] == [(20, 0.25)]
    assert scalars["valid/loss"] == [(20, pytest.approx(0.2))]
