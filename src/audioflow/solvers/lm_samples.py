"""The LM solver's generate stage: samples per condition, a listening page, a class score.

For each class of the evaluate set (the ``classifier.field`` sidecar, e.g. ``class``),
``generate.samples_per_condition`` real clips are picked; the LM samples, with their
conditions, one continuation of each clip's first ``generate.prompt_duration`` seconds
(prompted) and one sample from nothing (unprompted). Everything is decoded by the codec
and written as audio and spectrograms into ``samples/epoch_<E>/index.html``, one row per
clip: the real clip, its codec reconstruction, the unprompted sample, the prompted one.

Conditioning accuracy: a small classifier
(:class:`~audioflow.metrics.classifier.MelStatsClassifier`) trained on the real train
clips labels each sample; ``cond_acc`` is the share of unprompted samples labelled with
the class they were asked for (chance: one over the number of classes), scored over the
page's samples plus more unprompted ones, up to ``classifier.unprompted_per_condition`` per
condition (one sample in 16 moves a 4-per-class score by 6 points), ``cond_acc_prompted``
the same for prompted ones, ``classifier_acc_real`` the classifier's accuracy on the
real evaluate clips (how far to trust it) and ``classifier_acc_codec`` on their codec
reconstructions (how well a class survives the codec; samples, typical of their class,
may score above it).
"""

from __future__ import annotations

import html
import math
import re

import torch
from omegaconf import OmegaConf

from audioflow.solvers import pages

# items sampled at once (each twice with classifier-free guidance)
GENERATE_BATCH = 64


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]", "_", str(name))


def read_clips(entries: list[dict], sample_rate: int, channels: int, length: int) -> torch.Tensor:
    """The first ``length`` samples of each entry's file, zero-padded: (B, C, length)."""
    from audioflow.data.audio import read_segment

    clips = []
    for entry in entries:
        wav = read_segment(
            entry["path"], 0.0, length / sample_rate, sample_rate, channels, entry["sample_rate"]
        )
        clips.append(torch.nn.functional.pad(wav, (0, length - wav.shape[-1])))
    return torch.stack(clips)


def train_classifier(solver, field: str, length: int):
    """A classifier of ``field`` trained on the real train clips (None without labels).

    At most ``classifier.clips_per_class`` clips of each class are used (the first ones;
    null: all). Besides the clips as they are, it trains on ``classifier.augment`` copies
    at a random gain over a faint noise floor and, with ``classifier.codec_copies``, on the codec's
    reconstructions of the clips (their cached tokens through the LM's ``n_q`` codebooks,
    decoded): what the LM's samples go through. Every copy keeps its clip's true class.
    """
    from audioflow.metrics.classifier import MelStatsClassifier

    node, contract = solver.cfg.classifier, solver.codec.contract
    _, entries = solver._manifest("train")
    picks = [i for i, e in enumerate(entries) if e.get(field) is not None]
    labels = sorted({str(entries[i][field]) for i in picks})
    if len(labels) < 2:
        return None
    per_class = OmegaConf.select(node, "clips_per_class", default=None)
    if per_class:
        # a few dozen clips per class fit the features' statistics; every clip more costs a
        # decode of the codec and the feature passes of its augmented copies
        groups = _groups([entries[i] for i in picks], field, int(per_class))
        picks = [picks[j] for chosen in groups.values() for j in chosen]
    clips = read_clips([entries[i] for i in picks], contract.sample_rate, contract.channels, length)
    targets = torch.tensor([labels.index(str(entries[i][field])) for i in picks])
    if node.codec_copies:
        # the train tokens are cached already: decoding them spares an encode per clip
        codes = [solver.tokens["train"].codes[i][: solver.n_q] for i in picks]
        clips = torch.cat([clips, decode_codes(solver, codes, length)])
        targets = targets.repeat(2)
    classifier = MelStatsClassifier(contract.sample_rate, labels)
    classifier.fit(
        clips, targets, steps=int(node.steps), seed=int(solver.cfg.seed), augment=int(node.augment)
    )
    return classifier


def reconstruct(solver, clips: torch.Tensor, batch: int = 16) -> torch.Tensor:
    """Clips (B, C, T) encoded and decoded by the codec through the LM's ``n_q`` codebooks."""
    codes = []
    for start in range(0, len(clips), batch):
        part = solver.codec.encode(clips[start : start + batch].to(solver.device))
        codes.extend(part[:, : solver.n_q].cpu())
    return decode_codes(solver, codes, clips.shape[-1], batch)


def decode_codes(solver, codes: list, length: int, batch: int = 16) -> torch.Tensor:
    """(K, F_i) codes, each cut or padded (with its last frame) to ``length`` samples' worth of
    frames, decoded in batches: (B, C, length)."""
    frames = math.ceil(length * solver.frame_rate / solver.codec.contract.sample_rate)
    fitted = torch.stack([_prompt(c, frames) for c in codes])  # (B, K, frames)
    out = []
    for start in range(0, len(fitted), batch):
        part = fitted[start : start + batch].to(solver.device)
        out.append(solver.codec.decode(part)[..., :length].cpu())
    return torch.cat(out)


def _groups(entries: list[dict], field: str, per_group: int) -> dict[str, list[int]]:
    """Evaluate entries per class (the first ``per_group`` of each); one group without labels."""
    groups: dict[str, list[int]] = {}
    for i, entry in enumerate(entries):
        key = str(entry.get(field)) if entry.get(field) is not None else "all"
        if len(groups.setdefault(key, [])) < per_group:
            groups[key].append(i)
    return dict(sorted(groups.items()))


def generate_samples(solver) -> dict:
    """Run the generate stage of an :class:`~audioflow.solvers.lm.LMSolver`.

    Returns:
        ``samples`` written, ``cond_acc`` (over ``cond_samples`` unprompted samples: the
        page's and up to ``classifier.unprompted_per_condition`` per condition),
        ``cond_acc_prompted``, ``classifier_acc_real`` and ``classifier_acc_codec`` (those
        five when the evaluate set has labels).
    """
    cfg, lm, codec = solver.cfg, solver.lm, solver.codec
    contract = codec.contract
    gen = cfg.generate
    field = str(OmegaConf.select(cfg, "classifier.field", default="class"))
    frames = max(2, round(float(gen.duration) * solver.frame_rate))
    prompt_frames = min(frames - 1, max(1, round(float(gen.prompt_duration) * solver.frame_rate)))
    length = round(frames * contract.sample_rate / solver.frame_rate)
    _, entries = solver._manifest("evaluate")
    eval_codes = solver.tokens["evaluate"].codes
    groups = _groups(entries, field, int(gen.samples_per_condition))
    generator = torch.Generator(device=solver.device)
    generator.manual_seed(int(cfg.seed) * 1000 + solver.epoch)
    sampling = {
        "cfg_scale": float(OmegaConf.select(cfg, "conditioner.cfg_scale", default=1.0) or 1.0),
        "temperature": float(gen.temperature),
        "top_k": int(gen.top_k),
        "top_p": float(gen.top_p),
        "generator": generator,
    }
    # every condition in one batch: a sampling step costs about as much for 16 items as for 4
    picks = [i for chosen in groups.values() for i in chosen]
    infos = [entries[i] for i in picks]
    prompts = torch.stack([_prompt(eval_codes[i][: solver.n_q], prompt_frames) for i in picks])
    unprompted = _sample(lm, frames, infos, sampling)
    prompted = _sample(lm, frames, infos, sampling, prompts)
    real = read_clips(infos, contract.sample_rate, contract.channels, length)
    wavs = {
        "real": real,
        # the real clips through the codec: how well their class survives it
        "codec": reconstruct(solver, real),
        "unprompted": decode_codes(solver, unprompted, length),
        "prompted": decode_codes(solver, prompted, length),
    }
    results, start = {}, 0
    for name, chosen in groups.items():
        part = slice(start, start + len(chosen))
        results[name] = {"picks": chosen, **{kind: wav[part] for kind, wav in wavs.items()}}
        start += len(chosen)
    metrics = {"samples": float(2 * sum(len(r["picks"]) for r in results.values()))}
    classifier = train_classifier(solver, field, length)
    if classifier is not None:
        scored = int(OmegaConf.select(cfg, "classifier.unprompted_per_condition", default=0) or 0)
        for result in results.values():
            result["extra"] = _more_unprompted(
                solver, [entries[i] for i in result["picks"]], scored, frames, length, sampling
            )
        metrics.update(_accuracy(classifier, results))
    if solver.is_rank_zero:
        _write_page(solver, results, classifier, metrics)
    return metrics


def _sample(lm, frames: int, infos: list[dict], sampling: dict, prompts=None) -> list:
    """(K, frames) codes of one sample per item of ``infos`` (its condition), continuing
    ``prompts`` (B, K, Fp) when given; GENERATE_BATCH items at a time."""
    codes = []
    for start in range(0, len(infos), GENERATE_BATCH):
        part = slice(start, start + GENERATE_BATCH)
        prompt = None if prompts is None else prompts[part]
        prefix = lm.condition(infos[part])
        codes.extend(
            lm.generate(frames, batch=len(infos[part]), prefix=prefix, prompt=prompt, **sampling)
        )
    return codes


def _more_unprompted(solver, infos, total, frames, length, sampling):
    """Unprompted samples beyond the page's, up to ``total`` for this condition (their
    metadata cycles through ``infos``), decoded; scored, not shown."""
    extra = total - len(infos)
    if extra <= 0:
        return None
    cycled = [infos[j % len(infos)] for j in range(extra)]
    return decode_codes(solver, _sample(solver.lm, frames, cycled, sampling), length)


def _prompt(codes: torch.Tensor, frames: int) -> torch.Tensor:
    """The first ``frames`` frames of (K, F) codes, repeating the last frame if shorter."""
    if codes.shape[-1] < frames:
        codes = torch.cat([codes, codes[:, -1:].expand(-1, frames - codes.shape[-1])], dim=-1)
    return codes[:, :frames]


def _accuracy(classifier, results: dict) -> dict:
    hits = {"unprompted": 0, "prompted": 0, "real": 0, "codec": 0}
    total = scored = extra_hits = 0
    for name, result in results.items():
        result["predicted"] = {}
        for kind in hits:
            predicted = classifier.predict(result[kind])
            result["predicted"][kind] = predicted
            hits[kind] += sum(p == name for p in predicted)
        total += len(result["picks"])
        if result.get("extra") is not None:
            extra_hits += sum(p == name for p in classifier.predict(result["extra"]))
            scored += len(result["extra"])
    total = max(total, 1)
    return {
        # over the page's unprompted samples and the extra ones
        "cond_acc": (hits["unprompted"] + extra_hits) / (total + scored),
        "cond_samples": float(total + scored),
        "cond_acc_prompted": hits["prompted"] / total,
        "classifier_acc_real": hits["real"] / total,
        "classifier_acc_codec": hits["codec"] / total,
    }


def _write_page(solver, results: dict, classifier, metrics: dict) -> None:
    folder = solver.samples_folder
    folder.mkdir(parents=True, exist_ok=True)
    sr = solver.codec.contract.sample_rate
    columns = ["real", "codec", "unprompted", "prompted"]
    rows = []
    for name, result in results.items():
        for j, pick in enumerate(result["picks"]):
            stem = f"{_safe(name)}_{j}"
            cells = {}
            for kind in columns:
                wav = result[kind][j]
                pages.write_audio(folder / f"{stem}_{kind}.wav", wav, sr)
                # the shared dB scale: the codec's quieter output looks darker, as it is
                pages.write_spectrogram(folder / f"{stem}_{kind}.png", wav, sr, f"{name} {kind}")
                cells[kind] = (f"{stem}_{kind}.wav", f"{stem}_{kind}.png")
            note = "no classifier (no labels)"
            if classifier is not None:
                said = {kind: result["predicted"][kind][j] for kind in columns}
                note = "classifier: " + ", ".join(f"{k} -> {v}" for k, v in said.items())
            rows.append(
                {"name": f"{name} #{j} (evaluate item {pick})", "metrics": note, "cells": cells}
            )
    score = ""
    if "cond_acc" in metrics:
        score = (
            f"; conditioning accuracy {metrics['cond_acc']:.0%} unprompted, "
            f"{metrics['cond_acc_prompted']:.0%} prompted "
            f"(classifier on real clips: {metrics['classifier_acc_real']:.0%}, on their codec "
            f"reconstructions: {metrics['classifier_acc_codec']:.0%})"
        )
    title = f"XP {solver.xp.sig}, epoch {solver.epoch}: real vs generated{score}"
    head = "".join(f"<th>{html.escape(c)}</th>" for c in ["sample", *columns])
    body = "".join(
        f"<tr><td><b>{html.escape(row['name'])}</b><br><small>{html.escape(row['metrics'])}"
        "</small></td>" + "".join(pages.audio_cell(*row["cells"][c], c) for c in columns) + "</tr>"
        for row in rows
    )
    body = f"<h2>{html.escape(title)}</h2><table><tr>{head}</tr>{body}</table>"
    pages.html_page(folder, title, body)
