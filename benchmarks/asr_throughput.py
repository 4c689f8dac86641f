"""Training throughput of the ASR task: utterances/s with length-bucketed vs random batches.

One training step is what AsrSolver runs: pad a batch of whole utterances, log-mel,
SpecAugment, Conformer, CTC loss, backward, clip, AdamW step. Both samplers
(``BucketBatchSampler`` with ``bucketing`` on and off) draw the same number of batches of
the same size from the same spoken corpus; they alternate in rounds (ABAB...) so that a
load change on a shared machine hits both. The ratio bucketed / random is the figure;
the padding share (padded samples / all samples) says why.

  .venv/bin/python benchmarks/asr_throughput.py                    # CPU, solver=asr/debug
  .venv/bin/python benchmarks/asr_throughput.py --utterances 400 --batches 20 --rounds 3

Needs espeak-ng (the corpus is spoken into a temporary folder, as the demo's).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch


def build(overrides: list[str], vocab_size: int, device: str):
    from audioflow.config import compose
    from audioflow.models.asr_builder import build_asr_model

    cfg = compose(overrides)
    model = build_asr_model(cfg, vocab_size).to(device).train()
    return cfg, model


def run_round(model, loader, tokenizer, device: str) -> tuple[float, int, float]:
    """(seconds, utterances, padding share) of one pass of ``loader``'s batches."""
    from audioflow.models.asr import ctc_loss

    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    seconds, utterances, padded, total = 0.0, 0, 0, 0
    iterator = iter(loader)
    while True:
        t0 = time.perf_counter()
        try:
            batch = next(iterator)  # reading and padding are part of the step's cost
        except StopIteration:
            break
        wav, lengths = batch["wav"].to(device), batch["lengths"].to(device)
        out = model(wav, lengths)
        loss = ctc_loss(out.log_probs, out.frames, [tokenizer.encode(t) for t in batch["texts"]])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        opt.step()
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        seconds += time.perf_counter() - t0
        utterances += wav.shape[0]
        padded += int(wav.numel() - lengths.sum())
        total += wav.numel()
    return seconds, utterances, padded / max(total, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--overrides", nargs="*", default=["solver=asr/debug"])
    parser.add_argument("--utterances", type=int, default=320, help="corpus size")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--batches", type=int, default=15, help="batches per round")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per sampler (ABAB...)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from torch.utils.data import DataLoader

    from audioflow.data.manifest import build_manifest, read_manifest
    from audioflow.data.samplers import BucketBatchSampler
    from audioflow.data.speech import SpeechDataset, collate_speech
    from audioflow.data.speech_synth import write_speech_corpus
    from audioflow.data.tokenizer import CharTokenizer

    with tempfile.TemporaryDirectory(prefix="asr_bench_") as tmp:
        corpus = Path(tmp) / "train"
        write_speech_corpus(corpus, args.utterances, seed=1)
        build_manifest([corpus], corpus / "m.jsonl.gz", workers=1, require_text=True)
        dataset = SpeechDataset(read_manifest(corpus / "m.jsonl.gz"), 16000)
        tokenizer = CharTokenizer.from_texts(e["text"] for e in dataset.entries)
        cfg, model = build(args.overrides, len(tokenizer), args.device)
        durations = dataset.durations
        results: dict[str, list] = {"random": [], "bucketed": []}
        for round_idx in range(args.rounds + 1):  # round 0 warms up both, untimed
            for name in results:
                sampler = BucketBatchSampler(
                    durations, args.batch_size, args.batches, seed=round_idx,
                    bucketing=name == "bucketed", bucket_batches=int(cfg.dataset.bucket_batches),
                )  # fmt: skip
                loader = DataLoader(dataset, batch_sampler=sampler, collate_fn=collate_speech)
                measured = run_round(model, loader, tokenizer, args.device)
                if round_idx:
                    results[name].append(measured)
    print(
        f"asr throughput: {sum(1 for _ in model.parameters())} tensors, "
        f"{sum(p.numel() for p in model.parameters()) / 1e6:.2f}M params, {args.utterances} "
        f"utterances (mean {statistics.mean(durations):.2f} s), batch {args.batch_size}, "
        f"{args.batches} batches x {args.rounds} rounds, {args.threads} thread(s), {args.device}"
    )
    rates = {}
    for name, rounds in results.items():
        seconds = sum(r[0] for r in rounds)
        utterances = sum(r[1] for r in rounds)
        rates[name] = utterances / seconds
        per_round = ", ".join(f"{r[1] / r[0]:.1f}" for r in rounds)
        padding = statistics.mean(r[2] for r in rounds)
        print(
            f"  {name:9s} {rates[name]:6.1f} utt/s (rounds: {per_round}), "
            f"padding {100 * padding:.0f} % of samples"
        )
    print(f"  bucketed / random: {rates['bucketed'] / rates['random']:.2f}x")


if __name__ == "__main__":
    main()
