"""Compress audio to discrete codes and back with an exported codec package.

  audioflow codec encode IN.wav -o CODES.th --model DIR|//reference/NAME [--codebooks N]
  audioflow codec decode CODES.th -o OUT.wav --model DIR|//reference/NAME

The input is converted to the model's channel count and sample rate. A codes file holds
the code indices, the original length and the signature of the model that wrote it;
decoding with a different model is refused.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

CODES_FORMAT = "audioflow-codes-v1"
# The codec's convolutions pad themselves, so any non-empty input encodes; an empty one
# fails deep inside the first convolution.
MIN_SAMPLES = 1


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    enc = sub.add_parser("encode", help="audio file -> codes file")
    enc.add_argument("input", help="audio file (any format soundfile reads)")
    enc.add_argument("-o", "--output", required=True, help="codes file to write (.th)")
    enc.add_argument(
        "--codebooks", type=int, default=None, help="codebooks to keep (bandwidth); default: all"
    )
    dec = sub.add_parser("decode", help="codes file -> audio file")
    dec.add_argument("input", help="codes file written by `audioflow codec encode`")
    dec.add_argument("-o", "--output", required=True, help="audio file to write (.wav, .flac)")
    for p in (enc, dec):
        p.add_argument(
            "--model", required=True, help="package folder, //reference/NAME or //sig/SIG"
        )
        p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")


def _fail(message: str, code: int = 1) -> int:
    print(f"audioflow codec: {message}", file=sys.stderr)
    return code


def device_problem(value: str) -> str | None:
    """Why ``--device value`` cannot run the codec here, or None."""
    import torch

    try:
        device = torch.device(value)
    except RuntimeError:
        return f"--device {value}: not a device; choose cpu, cuda or cuda:N"
    if device.type == "cpu":
        return None
    if device.type != "cuda":
        return f"--device {value}: not supported; choose cpu, cuda or cuda:N"
    if not torch.cuda.is_available():
        return f"--device {value}: no CUDA device here; use --device cpu"
    count = torch.cuda.device_count()
    if device.index is not None and device.index >= count:
        return (
            f"--device {value}: this machine has {count} CUDA device(s), cuda:0 to cuda:{count - 1}"
        )
    return None


def output_problem(path: Path) -> str | None:
    """Why ``path`` cannot receive the output file, or None (missing folders are created)."""
    from audioflow.atomic import blocking_file

    if path.is_dir():
        return f"{path}: is a folder; choose another output"
    blocking = blocking_file(path)
    if blocking is not None:
        return f"{path}: {blocking} is a file, not a folder; choose another output"
    return None


def _load_model(spec: str, device: str):
    """(model, metadata) of the codec ``spec`` names, through ``load_codec`` (its contract
    checked against the weights; a package folder, //reference/NAME or //sig/SIG)."""
    from audioflow.config.errors import ConfigError
    from audioflow.models import load_codec

    try:
        codec = load_codec(spec, device=device)
    except ConfigError as exc:
        raise ValueError(str(exc)) from None
    return codec.model, {"signature": codec.lineage.get("signature")}


def encode(args) -> int:
    import soundfile as sf
    import torch

    from audioflow import atomic
    from audioflow.data.audio import convert_channels, resample

    model, meta = _load_model(args.model, args.device)
    try:
        data, rate = sf.read(args.input, dtype="float32", always_2d=True)
    except (RuntimeError, sf.LibsndfileError) as exc:
        return _fail(f"{args.input}: cannot read audio ({exc})")
    wav = torch.from_numpy(data.T.copy())  # (T, C) -> (C, T)
    wav = resample(convert_channels(wav, model.channels), rate, model.sample_rate)
    if wav.shape[-1] < MIN_SAMPLES:
        return _fail(
            f"{args.input}: {wav.shape[-1]} samples at {model.sample_rate} Hz, too short for "
            f"the codec (at least {MIN_SAMPLES}); choose another input",
            2,
        )
    if args.codebooks is not None:
        try:
            model.set_num_codebooks(args.codebooks)
        except ValueError as exc:
            return _fail(f"--codebooks {args.codebooks}: {exc}")
    codes = model.encode(wav[None].to(args.device))  # (1, K, F)
    payload = {
        "format": CODES_FORMAT,
        "codes": codes.cpu().to(torch.int16 if model.cardinality <= 2**15 else torch.int32),
        "length": int(wav.shape[-1]),
        "sample_rate": int(model.sample_rate),
        "signature": str(meta.get("signature", "")),
    }
    with atomic.replacing(args.output) as tmp:  # no half-written codes file, ever
        torch.save(payload, tmp)
    kbps = model.quantizer.bandwidth(codes.shape[1], model.frame_rate)
    print(f"{args.output}: {codes.shape[1]} codebooks x {codes.shape[2]} frames ({kbps:.2f} kbps)")
    return 0


def decode(args) -> int:
    import torch

    from audioflow.data.audio import write_audio_file

    try:
        payload = torch.load(args.input, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated or foreign file: torch raises many types
        return _fail(f"{args.input}: not a codes file ({type(exc).__name__})")
    if not isinstance(payload, dict) or payload.get("format") != CODES_FORMAT:
        return _fail(f"{args.input}: not a codes file; write one with `audioflow codec encode`")
    model, meta = _load_model(args.model, args.device)
    if payload["signature"] and payload["signature"] != meta.get("signature"):
        return _fail(
            f"{args.input} was encoded by model {payload['signature']}, not by "
            f"{args.model} ({meta.get('signature')}); decode with the same model"
        )
    codes = payload["codes"].long().to(args.device)
    wav = model.decode(codes, payload["length"])[0].cpu()  # (C, T)
    try:
        write_audio_file(args.output, wav.clamp(-1, 1).T.numpy(), model.sample_rate)
    except ValueError as exc:
        return _fail(str(exc), 2)
    print(f"{args.output}: {wav.shape[-1] / model.sample_rate:.2f} s at {model.sample_rate} Hz")
    return 0


def main(args) -> int:
    from audioflow.models.package import PackageError

    problem = device_problem(args.device) or output_problem(Path(args.output))
    if problem:
        return _fail(problem, 2)
    if args.action == "encode" and not Path(args.input).is_file():
        return _fail(f"{args.input}: no such audio file")
    if args.action == "decode" and not Path(args.input).is_file():
        return _fail(f"{args.input}: no such codes file")
    try:
        return encode(args) if args.action == "encode" else decode(args)
    except (PackageError, ValueError) as exc:
        return _fail(str(exc))
