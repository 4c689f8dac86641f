"""The LM solver end to end on a tiny codec: contract errors, a short run, evaluate
baselines, seeded generation, the listening page and the export's codec lineage."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from audioflow import cli


def _overrides(corpus, *extra):
    data = [f"datasource.{k}={v}" for k, v in corpus.items()]
    data.append(f"datasource.generate={corpus['evaluate']}")
    small = [
        "optim.epochs=1",
        "optim.updates_per_epoch=4",
        "codebooks.n_q=null",  # every codebook of the test codec (lm/debug models 2)
        "transformer_lm.dim=32",
        "transformer_lm.num_layers=1",
        "dataset.segment_duration=1.0",
        "generate.duration=1.0",
        "generate.samples_per_condition=1",
        "classifier.steps=50",
        "classifier.unprompted_per_condition=3",
    ]
    return ["solver=lm/debug", "conditioner=label", *data, *small, *extra]


def _run(overrides, capsys, *options):
    code = cli.main(["run", *options, *overrides])
    return code, capsys.readouterr().err


@pytest.mark.parametrize(
    ("override", "words"),
    [
        ("codebooks.n_q=8", ["codebooks.n_q=8", "4 codebooks", "more"]),
        ("sample_rate=24000", ["sample_rate", "24000", "16000"]),
        ("codebooks.card=1024", ["1024", "64"]),
    ],
)
def test_a_contract_mismatch_is_one_line_and_writes_nothing(
    lm_env, corpus, capsys, override, words
):
    code, err = _run(_overrides(corpus, override), capsys)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    for word in words:
        assert word in lines[0]
    xps = lm_env / "xp_root" / "xps"
    assert not xps.exists() or not any(xps.iterdir())
    assert not (lm_env / "xp_root" / "tokens").exists()


def _digest(folder: Path) -> dict:
    return {p.name: hashlib.md5(p.read_bytes()).hexdigest() for p in sorted(folder.glob("*.wav"))}


def test_a_short_run_evaluates_beside_baselines_and_generates_a_page(lm_env, corpus, capsys):
    code, err = _run(_overrides(corpus), capsys)
    assert code == 0, err
    (folder,) = (lm_env / "xp_root" / "xps").iterdir()
    history = json.loads((folder / "history.json").read_text())
    evaluate, generate = history[-1]["evaluate"], history[-1]["generate"]
    assert evaluate["uniform_ce"] == pytest.approx(4.1589, abs=1e-3)  # ln 64
    assert 0 < evaluate["unigram_ce"] < evaluate["uniform_ce"]
    assert evaluate["ce_ratio_unigram"] == pytest.approx(evaluate["ce"] / evaluate["unigram_ce"])
    assert {f"ppl_q{k}" for k in range(4)} <= set(evaluate)
    assert 0 <= generate["cond_acc"] <= 1 and generate["samples"] == 8
    # scored: the page's one unprompted sample per class and 2 more, not shown
    assert generate["cond_samples"] == 4 * 3
    page = folder / "samples" / "epoch_1" / "index.html"
    text = page.read_text()
    for name in ("chirp", "noise", "speech", "tone", "unprompted", "prompted", "real"):
        assert name in text
    first = _digest(page.parent)
    assert len(first) == 16  # 4 classes x (real, codec, unprompted, prompted)

    # the same seed generates the very same samples (the stage alone, from the best state)
    assert _run(_overrides(corpus), capsys, "--stage", "generate", "--epoch", "1")[0] == 0
    assert _digest(page.parent) == first


def test_a_valid_job_builds_no_optimizer_and_validates_as_the_whole_loop(
    lm_env, corpus, capsys, monkeypatch
):
    import subprocess
    import sys

    overrides = _overrides(corpus, "evaluate.every=0", "generate.every=0", "optim.epochs=2")
    monkeypatch.setenv("AUDIOFLOW_XP_DIR", str(lm_env / "loop"))
    assert _run(overrides, capsys)[0] == 0  # every stage in this process
    (loop,) = (lm_env / "loop" / "xps").iterdir()
    monkeypatch.setenv("AUDIOFLOW_XP_DIR", str(lm_env / "jobs"))
    assert _run(overrides, capsys, "--stage", "train", "--epoch", "2")[0] == 0
    # the valid jobs as the workflow runs them: a process each, without an optimizer, so
    # without TorchDynamo (which building any torch optimizer loads)
    script = (
        "import sys\nfrom audioflow import cli\n"
        "code = cli.main(sys.argv[1:])\nprint(code, 'torch._dynamo' in sys.modules)"
    )
    for epoch in ("1", "2"):
        argv = ["run", *overrides, "--stage", "valid", "--epoch", epoch]
        proc = subprocess.run(
            [sys.executable, "-c", script, *argv], capture_output=True, text=True, check=False
        )
        assert proc.stdout.split()[-2:] == ["0", "False"], proc.stderr[-2000:]
    (jobs,) = (lm_env / "jobs" / "xps").iterdir()
    assert jobs.name == loop.name
    for name in ("valid_1.json", "valid_2.json"):
        assert (jobs / "stages" / name).read_text() == (loop / "stages" / name).read_text()
    assert (jobs / "best.json").read_text() == (loop / "best.json").read_text()


def test_export_records_the_codec_and_a_new_codec_retrains_the_lm(lm_env, corpus, capsys):
    from audioflow.config.layout import LATEST_CHECKPOINT
    from audioflow.models import load_codec
    from audioflow.solvers import checkpoint
    from audioflow.solvers.commands.export import export

    from .codec_helpers import write_codec_package

    overrides = _overrides(corpus, "generate.every=0", "optim.epochs=2")
    assert _run(overrides, capsys)[0] == 0
    (folder,) = (lm_env / "xp_root" / "xps").iterdir()
    codec = load_codec("//reference/demo_codec")
    package = export(folder.name, str(lm_env / "demo_lm"))
    metadata = json.loads((package / "metadata.json").read_text())
    assert metadata["codec"]["content_hash"] == codec.content_hash
    assert metadata["codec"]["signature"] == codec.lineage["signature"]
    assert metadata["codec"]["n_q"] == 4 and metadata["solver"] == "lm"

    # the same run again is a no-op; after a new codec is published it trains again
    assert _run(overrides, capsys)[0] == 0
    assert not (folder / "stale_codec").exists()
    write_codec_package(lm_env / "reference" / "demo_codec", seed=1)
    assert _run(overrides, capsys)[0] == 0
    stale = folder / "stale_codec" / codec.content_hash[:16]
    assert (stale / LATEST_CHECKPOINT).is_file() and (stale / "history.json").is_file()
    payload = checkpoint.load(folder / LATEST_CHECKPOINT)
    new = load_codec("//reference/demo_codec")
    assert payload["state"]["codec_record"]["content_hash"] == new.content_hash
    assert [entry["epoch"] for entry in json.loads((folder / "history.json").read_text())] == [1, 2]


def test_the_reported_grad_norm_is_the_norm_before_clipping(lm_env, corpus, capsys):
    # clipped to 1e-3, every update's gradient is far larger: a norm taken after the clip
    # would read 1e-3 at most
    overrides = _overrides(corpus, "generate.every=0", "optim.max_norm=1e-3")
    assert _run([*overrides, "logging.log_updates=1"], capsys)[0] == 0
    (folder,) = (lm_env / "xp_root" / "xps").iterdir()
    rows = [json.loads(line) for line in (folder / "updates.jsonl").read_text().splitlines()]
    assert len(rows) == 4
    assert all(row["grad_norm/main"] > 1e-2 for row in rows), rows
