"""The ASR solver on a real spoken corpus: its Noam schedule, the second OptimScheduler,
SpecAugment in train only, evaluate/generate outputs, export and `asr transcribe`."""

from __future__ import annotations

import pytest
import torch

from audioflow.cli import main as cli
from audioflow.data.manifest import read_manifest
from audioflow.data.speech import SpeechDataset, collate_speech

from .conftest import corpus_files


def _noam(step: int, lr: float, warmup: int) -> float:
    return lr * warmup**0.5 * min(step**-0.5, step * warmup**-1.5)


def test_noam_lr_through_the_task_config(make_asr_solver):
    solver = make_asr_solver("optim.updates_per_epoch=3", "optim.accum_grad=2",
                             "optim_sches.main.conf.warmup_steps=4")  # fmt: skip
    main = solver.optim_sches["main"]
    assert type(main).__name__ == "NoamLr"
    lr = float(solver.cfg.optim_sches.main.conf.optim_conf.lr)
    solver.run_stage("train", 1)
    main = solver.optim_sches["main"]
    assert main.real_step == 3  # 6 micro-batches, accum_grad=2: 3 updates
    assert main.get_lr() == pytest.approx(_noam(3, lr, 4), rel=1e-12)  # still warming up
    solver.run_stage("train", 2)  # resumes from epoch 1's checkpoint
    main = solver.optim_sches["main"]
    assert main.real_step == 6 and main.get_lr() == pytest.approx(_noam(6, lr, 4), rel=1e-12)
    assert _noam(6, lr, 4) < _noam(4, lr, 4) == lr  # peaked at warmup_steps, then decays


def _snapshot(model) -> dict[str, dict[str, torch.Tensor]]:
    """Parameters per top-level module (buffers such as BatchNorm statistics left out)."""
    return {
        name: {k: v.detach().clone() for k, v in module.named_parameters()}
        for name, module in model.named_children()
    }


def _changed(before, after) -> set[str]:
    return {
        name
        for name in before
        if any(not torch.equal(before[name][k], after[name][k]) for k in before[name])
    }


def test_second_optim_scheduler_updates_only_its_modules(make_asr_solver):
    # main at lr 0: what moves is what the aux OptimScheduler (aux_loss) updates
    solver = make_asr_solver("solver=asr/aux_debug", "optim.updates_per_epoch=2",
                             "optim_sches.main.conf.optim_conf.lr=0.0")  # fmt: skip
    assert solver.optim_sches.names == ["main", "aux"]
    before = _snapshot(solver.model)
    metrics = solver.run_stage("train", 1)
    assert "aux_loss" in metrics and "loss" in metrics
    assert _changed(before, _snapshot(solver.model)) == {"aux_head"}
    # and the other way round: aux at lr 0 leaves its head alone while main trains the rest
    solver = make_asr_solver("solver=asr/aux_debug", "optim.updates_per_epoch=2",
                             "optim_sches.aux.conf.optim_conf.lr=0.0")  # fmt: skip
    before = _snapshot(solver.model)
    solver.run_stage("train", 1)
    assert _changed(before, _snapshot(solver.model)) == {"frontend", "encoder", "ctc_head"}


def test_specaugment_only_masks_in_train(make_asr_solver):
    solver = make_asr_solver("optim.updates_per_epoch=2", "optim.epochs=1")
    seen = {}

    def record(module, inputs, output):
        stage = solver.current_stage
        seen[stage] = seen.get(stage, False) or not torch.equal(inputs[0], output)

    solver.model.specaugment.register_forward_hook(record)
    solver.run()
    assert seen == {"train": True, "valid": False, "evaluate": False, "generate": False}


def test_evaluate_generate_export_and_transcribe(make_asr_solver, speech_corpus, tmp_path,
                                                 monkeypatch, capsys):  # fmt: skip
    solver = make_asr_solver("optim.updates_per_epoch=3", "optim.epochs=1")
    solver.run()
    entry = solver.history[-1]
    for key in ("wer", "cer", "wer_beam", "cer_beam", "wer_digits", "utterances"):
        assert key in entry["evaluate"], entry["evaluate"]
    assert entry["evaluate"]["utterances"] == 8.0
    page = (solver.samples_folder / "index.html").read_text()
    assert page.count("<audio") == 8 and "reference" in page
    assert len(list(solver.samples_folder.glob("*.wav"))) == 8

    # export rebuilds the model from the XP's checkpoint vocabulary, not from its data
    from omegaconf import OmegaConf

    from audioflow.solvers.exports import model_only_solver

    cfg = OmegaConf.merge(solver.cfg, {"datasource": {"train": str(tmp_path / "gone.jsonl.gz")}})
    rebuilt = model_only_solver(type(solver), cfg, xp=solver.xp)
    assert rebuilt.tokenizer.tokens == solver.tokenizer.tokens

    refs = tmp_path / "reference"
    refs.mkdir()
    monkeypatch.setenv("AUDIOFLOW_REFERENCE_DIR", str(refs))
    assert cli(["export", solver.xp.sig, "-o", str(refs / "demo_asr")]) == 0
    from audioflow.solvers.exports import load_export

    assert load_export(refs / "demo_asr").metadata["solver"] == "asr"
    files = corpus_files(speech_corpus, "evaluate")[:3]
    capsys.readouterr()
    assert cli(["asr", "transcribe", "--model", "//reference/demo_asr", *map(str, files)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert [line.split("\t")[0] for line in lines] == [str(f) for f in files]
    # an XP's best state (//sig/SIG) transcribes as its published package does
    assert cli(["asr", "transcribe", "--model", f"//sig/{solver.xp.sig}", *map(str, files)]) == 0
    assert capsys.readouterr().out.strip().splitlines() == lines

    # the package transcribes each file exactly as the best state decodes it greedily
    manifest = next(o for o in speech_corpus if o.startswith("datasource.evaluate="))
    entries = {e["path"]: e for e in read_manifest(manifest.split("=", 1)[1])}
    dataset = SpeechDataset([entries[str(f)] for f in files], 16000)
    with solver.swap_best_state(), torch.no_grad():
        solver.model.eval()
        decoders = solver._decoders()
        hyps = [
            solver.transcribe_batch(collate_speech([item]), decoders)[""][0] for item in dataset
        ]
    assert [line.split("\t", 1)[1] if "\t" in line else "" for line in lines] == hyps


def test_transcribe_refuses_bad_input_in_one_line(tmp_path, capsys):
    missing = tmp_path / "nope.wav"
    assert cli(["asr", "transcribe", "--model", str(tmp_path), str(missing)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "nope.wav" in err and "no such file" in err
    wav = tmp_path / "x.wav"
    import numpy as np
    import soundfile as sf

    sf.write(wav, np.zeros(1600, dtype=np.float32), 16000)
    assert cli(["asr", "transcribe", "--model", str(tmp_path / "pkg"), str(wav)]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "not a package" in err
