"""Codec quality against CPU training time, next to Opus at the nearest bitrate it reaches.

Trains the codec of a recipe (default ``solver=compression/debug``) in this process on the
synthetic corpus and, at each mark of process CPU time spent training (evaluation time
left out), evaluates SI-SNR and mel distance at every bandwidth on the evaluate clips.
Opus (``opusenc --hard-cbr`` / ``opusdec``, libopus) codes the same clips at each
bitrate of ``--opus-kbps``; its decoded audio is aligned to the original by the lag of
the cross-correlation peak (opusdec already drops the pre-skip; this catches what
resampling adds) and scored by the same metric code (audioflow.metrics.codec).

  python benchmarks/codec_quality.py --marks 1,2,5 [--opus-kbps 6,8,12] [OVERRIDE ...]

Writes ``benchmarks/codec_quality.json`` and ``benchmarks/codec_quality.png``; the figures
go to benchmarks/RESULTS.md. Needs ``opusenc``/``opusdec`` (Debian: opus-tools).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from omegaconf import OmegaConf

HERE = Path(__file__).resolve().parent
STAGES = ("train", "valid", "evaluate", "generate")


def _splits() -> dict[str, tuple[int, int]]:
    """Size and seed of each split of the demo corpus, as config/workflow.yaml sets them."""
    import yaml

    synth = yaml.safe_load((HERE.parent / "config" / "workflow.yaml").read_text())["synth"]
    return {split: (int(v["n"]), int(v["seed"])) for split, v in synth.items()}


def corpus(root: Path) -> dict[str, Path]:
    """The demo's synthetic corpus (same sizes and seeds as the workflow), manifests."""
    from audioflow.data.manifest import build_manifest
    from audioflow.data.synth import write_corpus

    manifests = {}
    for split, (n, seed) in _splits().items():
        folder = root / split
        manifest = folder / "manifest.jsonl.gz"
        if not manifest.is_file():
            write_corpus(folder, n, seed)
            build_manifest([folder], manifest, workers=1)
        manifests[split] = manifest
    manifests["generate"] = manifests["evaluate"]
    return manifests


def scores(estimate: torch.Tensor, reference: torch.Tensor, mel) -> dict:
    """Mean SI-SNR over audible clips and mel distance, as the solver's evaluate."""
    from audioflow.metrics.codec import audible, si_snr_items

    mask = audible(reference)
    return {
        "sisnr": float(si_snr_items(estimate, reference)[mask].mean()),
        "mel_distance": float(mel(estimate, reference)),
    }


def opus_roundtrip(clips: torch.Tensor, sample_rate: int, kbps: float) -> torch.Tensor:
    """(B, 1, T) clips coded by Opus at ``kbps`` and decoded, aligned to the originals."""
    from audioflow.metrics import opus

    coded = [opus.roundtrip(clip, sample_rate, kbps) for clip in clips[:, 0].numpy()]
    return torch.from_numpy(np.stack(coded))[:, None]


def evaluate(model, clips: torch.Tensor, mel) -> dict:
    """Scores at every bandwidth of the codec (kbps -> scores)."""
    model.eval()
    results = {}
    with torch.no_grad():
        for n in range(1, model.total_codebooks + 1):
            model.set_num_codebooks(n)
            y = model(clips).x
            kbps = model.quantizer.bandwidth(n, model.frame_rate)
            results[f"{kbps:.2f}"] = {"n_q": n, **scores(y, clips, mel)}
        model.set_num_codebooks(model.total_codebooks)
        y = model(clips).x
        results["levels"] = {
            "rms_out": float(y.pow(2).mean().sqrt()),
            "rms_in": float(clips.pow(2).mean().sqrt()),
            "dc_out": float(y.mean()),
        }
    model.train()
    return results


def calibration(clips: torch.Tensor, mel) -> dict:
    """Scores of known distortions of the evaluate clips, to read the curve's numbers by.

    The mel distance is a log-spectral distance with a floor far below the corpus's 16-bit
    noise floor, so it weighs the quiet bins as much as the loud ones: an exact copy 30 dB
    too quiet scores better than a copy with white noise 40 dB down. These rows show it.
    """
    gen = torch.Generator().manual_seed(0)
    rms = clips.pow(2).mean().sqrt()
    rows = {f"copy at {db} dB": clips * 10 ** (db / 20) for db in (-10, -20, -30)}
    for snr in (20, 40):
        noise = torch.randn(clips.shape, generator=gen) * rms * 10 ** (-snr / 20)
        rows[f"copy + white noise at {snr} dB SNR"] = clips + noise
    rows["silence"] = torch.zeros_like(clips)
    return {name: scores(y, clips, mel) for name, y in rows.items()}


def train_curve(cfg, marks_s: list[float], log) -> tuple[list[dict], dict]:
    """Train ``cfg``'s codec; evaluate at each mark of training CPU seconds."""
    from audioflow.data.builders import build_audio_loaders
    from audioflow.losses.codec import ReconstructionLoss
    from audioflow.metrics.codec import MelDistance
    from audioflow.models.builders import build_compression_model
    from audioflow.optim import build_optimizer

    torch.manual_seed(int(cfg.seed))
    model = build_compression_model(cfg)
    weights = OmegaConf.to_container(cfg.losses, resolve=True)
    for key in ("adv", "feat"):  # reconstruction recipes only: no discriminator here
        if float(weights.pop(key, 0.0)) > 0:
            raise SystemExit(f"losses.{key} > 0: this benchmark trains reconstruction recipes")
    loss_fn = ReconstructionLoss(
        int(cfg.sample_rate), weights, mel_kwargs=OmegaConf.to_container(cfg.mel_loss)
    )
    optimizer = build_optimizer(model.parameters(), cfg.optim)
    cfg.optim.updates_per_epoch = 10**6  # one long epoch of batches
    loaders = build_audio_loaders(cfg)
    clips = torch.cat(
        [b[0] if isinstance(b, tuple | list) else b for b in loaders["evaluate"]]
    )  # (B, C, T)
    mel = MelDistance(int(cfg.sample_rate), int(cfg.metrics.mel_distance.n_fft))
    info = {
        "parameters": sum(p.numel() for p in model.parameters()),
        "frame_rate": model.frame_rate,
        "bandwidths_kbps": model.bandwidths(),
        "clips": int(clips.shape[0]),
    }
    curve, spent, updates, batches = [], 0.0, 0, iter(loaders["train"])
    max_norm = float(cfg.optim.max_norm)
    for mark in marks_s:
        while spent < mark:
            start = time.process_time()
            x = next(batches)
            x = x[0] if isinstance(x, tuple | list) else x
            result = model(x)
            loss, _ = loss_fn(result.x, x, result.penalty)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if max_norm > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm)
            optimizer.step()
            updates += 1
            spent += time.process_time() - start
        point = {"cpu_s": spent, "updates": updates, **evaluate(model, clips, mel)}
        curve.append(point)
        log(point)
    return curve, {**info, "clips_tensor": clips}


def plot(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    curve = report["curve"]
    minutes = [p["cpu_s"] / 60 for p in curve]
    kbps = [k for k in curve[0] if k not in ("cpu_s", "updates", "levels")]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), dpi=100)
    for ax, key, label in (
        (axes[0], "mel_distance", "mel distance (lower is better)"),
        (axes[1], "sisnr", "SI-SNR dB (higher is better)"),
    ):
        for k in kbps:
            ax.plot(minutes, [p[k][key] for p in curve], marker="o", label=f"codec {k} kbps")
        for rate, s in report["opus"].items():
            ax.axhline(s[key], linestyle="--", color="gray", linewidth=1)
            ax.text(minutes[-1], s[key], f" Opus {rate} kbps", va="center", fontsize=7)
        ax.set_xlabel("training CPU minutes")
        ax.set_title(label, fontsize=10)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.suptitle(" ".join(report["overrides"]), fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--marks", default="1,2,5", help="training CPU minutes to evaluate at")
    parser.add_argument("--opus-kbps", default="6,8,12", help="Opus bitrates to compare")
    parser.add_argument("--data", default=None, help="corpus folder (default: a temp folder)")
    parser.add_argument("--out", default=str(HERE / "codec_quality"), help="output stem")
    parser.add_argument("overrides", nargs="*", help="config overrides of the recipe")
    args = parser.parse_args()
    from audioflow.metrics import opus

    if not opus.available():
        raise SystemExit("opusenc/opusdec not found: apt-get install -y opus-tools")
    torch.set_num_threads(1)
    from audioflow.config import compose

    overrides = args.overrides or ["solver=compression/debug"]
    data = Path(args.data or tempfile.mkdtemp(prefix="codec_quality_"))
    manifests = corpus(data)
    cfg = compose([*overrides, *(f"datasource.{s}={manifests[s]}" for s in STAGES)])
    marks = [float(m) * 60 for m in args.marks.split(",")]
    curve, info = train_curve(cfg, marks, lambda p: print(json.dumps(p), flush=True))
    clips = info.pop("clips_tensor")
    from audioflow.metrics.codec import MelDistance

    mel = MelDistance(int(cfg.sample_rate), int(cfg.metrics.mel_distance.n_fft))
    opus = {
        rate: scores(opus_roundtrip(clips, int(cfg.sample_rate), float(rate)), clips, mel)
        for rate in args.opus_kbps.split(",")
    }
    report = {
        "overrides": overrides,
        "calibration": calibration(clips, mel),
        "machine": "2-core x86_64 VM, no GPU, shared",
        **info,
        "curve": curve,
        "opus": opus,
    }
    Path(f"{args.out}.json").write_text(json.dumps(report, indent=2) + "\n")
    plot(report, Path(f"{args.out}.png"))
    print(json.dumps({"opus": opus}, indent=2))


if __name__ == "__main__":
    main()
