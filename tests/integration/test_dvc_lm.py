"""`dvc repro` of codec -> tokens -> LM in a temporary git repository: a new codec published
under the same name re-encodes the tokens and retrains the LM, and nothing else runs.

The repository is a copy of this checkout with the demo shrunk to seconds (tiny corpus,
a tiny codec, an LM of 1 layer trained 2 updates); every stage runs for real through
DVC, Snakemake and torchrun.
"""

from __future__ import annotations

import json
import re

import pytest
import yaml

from .dvc_helpers import run
from .test_dvc_repro import _copy_checkout, _env

LM_TINY = [
    "solver=lm/debug",
    "conditioner=label",
    "optim.epochs=1",
    "optim.updates_per_epoch=2",
    "dataset.batch_size=2",
    "dataset.segment_duration=0.25",  # short enough for a codec of up to 500 frames/s
    "transformer_lm.dim=32",
    "transformer_lm.num_layers=1",
    "transformer_lm.max_steps=200",
    "generate.duration=0.25",
    "generate.prompt_duration=0.1",
    "generate.samples_per_condition=1",
    "classifier.steps=20",
]


def _set_workflow(repo, codec_extra: list[str]) -> None:
    path = repo / "config" / "workflow.yaml"
    config = yaml.safe_load(path.read_text())
    codec = next(x for x in config["xps"] if x["name"] == "demo")
    codec["overrides"] = [o for o in codec["overrides"] if not o.startswith("optim.lr=")]
    codec["overrides"] += codec_extra
    config["xps"] = [codec, {"name": "demo_lm", "overrides": LM_TINY}]
    config["publish"] = [{"xp": "demo", "as": "demo_codec"}, {"xp": "demo_lm", "as": "demo_lm"}]
    path.write_text(yaml.safe_dump(config, sort_keys=False))


def _ran(output: str) -> set[str]:
    return set(re.findall(r"Running stage '([^']+)'", output))


def _lm_codec(repo) -> dict:
    return json.loads((repo / "reference" / "demo_lm" / "metadata.json").read_text())["codec"]


@pytest.mark.slow
def test_a_new_codec_reruns_exactly_the_tokens_and_the_lm(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    _copy_checkout(repo)
    _set_workflow(repo, [])
    first = run("dvc", "repro", cwd=repo, env=_env(), check=False)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    assert {"demo_codec", "tokens", "demo_lm"} <= _ran(first.stdout)
    dag = run("dvc", "dag", "--dot", cwd=repo, env=_env()).stdout
    for edge in (
        '"synth@train" -> "demo_codec"',
        '"demo_codec" -> "tokens"',
        '"tokens" -> "demo_lm"',
    ):
        assert edge in dag, dag
    before = _lm_codec(repo)

    # another codec XP published under the same name
    _set_workflow(repo, ["optim.lr=2e-3"])
    second = run("dvc", "repro", cwd=repo, env=_env(), check=False)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    assert _ran(second.stdout) == {"demo_codec", "tokens", "demo_lm"}
    after = _lm_codec(repo)
    assert after["content_hash"] != before["content_hash"]
    assert after["signature"] != before["signature"]
    (lm_xp,) = [p for p in (repo / "outputs" / "xps").iterdir() if (p / "stale_codec").is_dir()]
    assert (lm_xp / "stale_codec" / before["content_hash"][:16] / "history.json").is_file()
