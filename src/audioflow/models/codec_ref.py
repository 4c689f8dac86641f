"""The codec reference API: load a trained codec by reference and check its contract.

A consumer of codec tokens (a token LM, a token-shard writer) names the codec it builds
on and what it needs from it::

    codec = load_codec("//reference/demo_codec")     # or "//sig/SIG", or a package folder
    codec.require(n_q=4, card=1024, sample_rate=16000)
    codes = codec.encode(wav)        # (B, C, T) -> (B, K, F) int64, K = codec.contract.n_q
    wav = codec.decode(codes[:, :4]) # the first k codebooks of a residual stack are the
                                     # codes of the same audio at the lower bandwidth

``//reference/NAME`` is a published package (``audioflow export``; the workflow's
``publish:``), ``//sig/SIG`` the best state of an XP of the current XP root, and a path a
package folder. The contract (sample rate, channels, frame rate, codebooks, cardinality,
bandwidths) is read from the package's ``metadata.json`` and checked against the model
it rebuilds, so a package whose declaration and weights disagree is refused.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from audioflow.config.paths import REFERENCE_PREFIX, SIG_PREFIX


@dataclass(frozen=True)
class CodecContract:
    """What a codec produces, as its consumers check it.

    Attributes:
        sample_rate: audio sample rate in Hz.
        channels: audio channels.
        frame_rate: code frames per second.
        n_q: number of codebooks (the top bandwidth).
        cardinality: codes per codebook.
        bandwidths: kbps with 1..n_q codebooks.
    """

    sample_rate: int
    channels: int
    frame_rate: float
    n_q: int
    cardinality: int
    bandwidths: tuple[float, ...]

    @classmethod
    def of_model(cls, model) -> CodecContract:
        """The contract of an :class:`~audioflow.models.encodec.EncodecModel`."""
        return cls(
            sample_rate=int(model.sample_rate),
            channels=int(model.channels),
            frame_rate=float(model.frame_rate),
            n_q=int(model.total_codebooks),
            cardinality=int(model.cardinality),
            bandwidths=tuple(float(b) for b in model.bandwidths()),
        )

    @classmethod
    def from_dict(cls, data: dict) -> CodecContract:
        """Read the ``contract`` entry of a package's metadata.

        Raises:
            ValueError: a key is missing or has the wrong type (the message names it).
        """
        try:
            return cls(
                sample_rate=int(data["sample_rate"]),
                channels=int(data["channels"]),
                frame_rate=float(data["frame_rate"]),
                n_q=int(data["n_q"]),
                cardinality=int(data["cardinality"]),
                bandwidths=tuple(float(b) for b in data["bandwidths"]),
            )
        except KeyError as exc:
            raise ValueError(f"contract.{exc.args[0]} is missing") from None
        except (TypeError, ValueError) as exc:
            raise ValueError(f"contract: {exc}") from None

    def to_dict(self) -> dict:
        """JSON-ready form (the ``contract`` entry of metadata.json)."""
        data = asdict(self)
        data["bandwidths"] = list(self.bandwidths)
        return data

    @property
    def bitrate_kbps(self) -> float:
        """The top bandwidth (all ``n_q`` codebooks)."""
        return self.n_q * math.log2(self.cardinality) * self.frame_rate / 1000


class CodecContractError(ValueError):
    """A codec does not provide what its consumer asks for (one line naming the mismatch)."""


def _close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-9)


def contract_mismatch(declared: CodecContract, actual: CodecContract) -> str | None:
    """The first field where ``declared`` and ``actual`` differ, as ``key=declared vs actual``."""
    for key, value in asdict(declared).items():
        other = getattr(actual, key)
        if key == "bandwidths":
            same = len(value) == len(other) and all(_close(a, b) for a, b in zip(value, other))
        elif key == "frame_rate":
            same = _close(value, other)
        else:
            same = value == other
        if not same:
            return f"{key}={value} vs {other}"
    return None


@dataclass(frozen=True)
class LoadedCodec:
    """A trained codec in eval mode, without gradients, and what it promises.

    Attributes:
        contract: the codec's :class:`CodecContract`.
        lineage: where it comes from: ``signature``, ``config`` (the resolved config),
            ``manifests`` (path and sha256 of each stage's manifest), ``code_version``.
        content_hash: sha256 over the package's files (the XP's config and best state
            for ``//sig/SIG``): what keys token shards written with this codec.
        source: the reference it was loaded from, as given.
    """

    contract: CodecContract
    lineage: dict
    content_hash: str
    source: str
    model: Any = field(repr=False, compare=False)

    def __post_init__(self) -> None:
        from torch.nn.utils import parametrize

        self.model.eval()
        # frozen for good: weight norm folded into plain weights once (the same codes and
        # audio, without recomputing every weight at every call: ~10 % of an encode)
        for module in self.model.modules():
            if parametrize.is_parametrized(module, "weight"):
                parametrize.remove_parametrizations(module, "weight")
        for p in self.model.parameters():
            p.requires_grad_(False)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def require(
        self,
        *,
        n_q: int | None = None,
        card: int | None = None,
        sample_rate: int | None = None,
        channels: int | None = None,
    ) -> None:
        """Check that the codec serves a consumer that needs these values.

        Args:
            n_q: codebooks the consumer uses (at most the codec's).
            card: codes per codebook (exactly the codec's).
            sample_rate: audio sample rate (exactly the codec's).
            channels: audio channels (exactly the codec's).

        Raises:
            CodecContractError: one line naming the first mismatch and what to do.
        """
        c, src = self.contract, self.source
        if n_q is not None and not 1 <= int(n_q) <= c.n_q:
            raise CodecContractError(
                f"codec {src} has {c.n_q} codebooks; n_q={n_q} asks for "
                f"{'more' if int(n_q) > c.n_q else 'none'}: choose n_q in [1, {c.n_q}] or "
                "another codec"
            )
        if card is not None and int(card) != c.cardinality:
            raise CodecContractError(
                f"codec {src} has {c.cardinality} codes per codebook; card={card} does not "
                f"match: set card={c.cardinality} or use another codec"
            )
        if sample_rate is not None and int(sample_rate) != c.sample_rate:
            raise CodecContractError(
                f"codec {src} runs at {c.sample_rate} Hz; sample_rate={sample_rate} does not "
                f"match: set sample_rate={c.sample_rate} or use another codec"
            )
        if channels is not None and int(channels) != c.channels:
            raise CodecContractError(
                f"codec {src} has {c.channels} channel(s); channels={channels} does not match: "
                f"set channels={c.channels} or use another codec"
            )

    @torch.no_grad()
    def encode(self, wav: torch.Tensor) -> torch.Tensor:
        """Waveform (B, C, T) at the contract's rate -> codes (B, n_q, ceil(T / hop)) int64.

        Raises:
            CodecContractError: not a (B, C, T) tensor with the contract's channels.
        """
        if wav.dim() != 3 or wav.shape[1] != self.contract.channels or wav.shape[-1] < 1:
            raise CodecContractError(
                f"codec {self.source} encodes (B, {self.contract.channels}, T) audio, "
                f"got shape {tuple(wav.shape)}"
            )
        self.model.set_num_codebooks(self.contract.n_q)
        return self.model.encode(wav.to(self.device, torch.float32)).long()

    @torch.no_grad()
    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """Codes (B, K, F), 1 <= K <= n_q, values in [0, cardinality) -> waveform (B, C, F*hop).

        Raises:
            CodecContractError: wrong shape, dtype, codebook count or code value.
        """
        c = self.contract
        if codes.dim() != 3 or not 1 <= codes.shape[1] <= c.n_q or codes.shape[-1] < 1:
            raise CodecContractError(
                f"codec {self.source} decodes (B, K, F) codes with 1 <= K <= {c.n_q}, got "
                f"shape {tuple(codes.shape)}"
            )
        if codes.is_floating_point() or codes.is_complex():
            raise CodecContractError(
                f"codec {self.source} decodes integer codes, got {codes.dtype}"
            )
        low, high = int(codes.min()), int(codes.max())
        if low < 0 or high >= c.cardinality:
            raise CodecContractError(
                f"codec {self.source} has codes 0..{c.cardinality - 1}, got values {low}..{high}"
            )
        return self.model.decode(codes.to(self.device, torch.long))


def package_hash(folder: Path, names: tuple[str, ...]) -> str:
    """sha256 over the named files of ``folder`` (each file's name and bytes)."""
    digest = hashlib.sha256()
    for name in names:
        digest.update(name.encode() + b"\0")
        with open(Path(folder) / name, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest.update(chunk)
        digest.update(b"\0")
    return digest.hexdigest()


def lineage_of(metadata: dict, config: dict) -> dict:
    """The lineage entry of a loaded codec from its package metadata and config."""
    return {
        "signature": metadata.get("signature"),
        "config": config,
        "manifests": metadata.get("manifests", {}),
        "code_version": metadata.get("code_version", {}),
    }


def _from_package(folder: Path, source: str, device: str) -> LoadedCodec:
    from omegaconf import OmegaConf

    from audioflow.models.package import FILES, PackageError, load_package

    model, metadata = load_package(folder, device=device)
    actual = CodecContract.of_model(model)
    declared = metadata.get("contract")
    if declared is not None:
        try:
            declared = CodecContract.from_dict(declared)
        except ValueError as exc:
            raise PackageError(f"{folder / 'metadata.json'}: {exc}; export it again") from None
        mismatch = contract_mismatch(declared, actual)
        if mismatch:
            raise PackageError(
                f"{folder / 'metadata.json'}: declares {mismatch} (the weights' model); "
                "export the package again"
            )
    config = OmegaConf.to_container(OmegaConf.load(folder / "config.yaml"), resolve=True)
    return LoadedCodec(
        contract=actual,
        lineage=lineage_of(metadata, config),
        content_hash=package_hash(folder, FILES),
        source=source,
        model=model,
    )


def _from_sig(sig: str, source: str, device: str) -> LoadedCodec:
    """The codec of an XP's best state (``best.th``), built from the XP's config."""
    from omegaconf import OmegaConf

    from audioflow.config import xp_from_sig
    from audioflow.config.layout import BEST_CHECKPOINT, CONFIG_FILE
    from audioflow.models.builders import build_compression_model
    from audioflow.models.lineage import code_version, manifest_hashes
    from audioflow.models.package import PackageError, codec_weights

    xp = xp_from_sig(sig)
    folder = Path(xp.folder)
    path = folder / BEST_CHECKPOINT
    if not path.is_file():
        raise PackageError(f"{source}: {path}: no best state yet; run the XP through a valid stage")
    try:
        # a best state holds {"state": {"model": weights, ...}, ...} (solvers.checkpoint)
        state = torch.load(path, map_location="cpu", weights_only=True)["state"]["model"]
        model = build_compression_model(xp.cfg)
        model.load_state_dict(codec_weights(state))
    except Exception as exc:  # truncated file, another solver's state, a changed config
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise PackageError(f"{source}: {path}: not a usable codec best state ({first})") from exc
    lineage = {
        "signature": xp.sig,
        "config": OmegaConf.to_container(xp.cfg, resolve=True),
        "manifests": manifest_hashes(OmegaConf.select(xp.cfg, "datasource")),
        "code_version": code_version(),
    }
    return LoadedCodec(
        contract=CodecContract.of_model(model),
        lineage=lineage,
        content_hash=package_hash(folder, (CONFIG_FILE, BEST_CHECKPOINT)),
        source=source,
        model=model.to(device),
    )


def load_codec(ref: str, device: str = "cpu") -> LoadedCodec:
    """Load a codec by reference.

    Args:
        ref: ``//reference/NAME`` (a published package), ``//sig/SIG`` (an XP's best
            state under the current XP root) or the path of a package folder.
        device: where to put the model.

    Returns:
        The :class:`LoadedCodec`.

    Raises:
        ConfigError: a reference dir or XP that does not exist (the message says which).
        PackageError: not a codec package, or one whose metadata and weights disagree.
    """
    from audioflow.config.errors import ConfigError
    from audioflow.config.paths import resolve_path
    from audioflow.models.package import PackageError

    text = str(ref)
    if text.startswith(SIG_PREFIX):
        return _from_sig(text[len(SIG_PREFIX) :].rstrip("/"), text, device)
    folder = resolve_path(text)
    if text.startswith(REFERENCE_PREFIX) and not folder.is_dir():
        raise ConfigError(
            f"{text}: no published codec at {folder}; publish one (the workflow's publish:) "
            "or export one there with `audioflow export SIG -o DIR`"
        )
    try:
        return _from_package(folder, text, device)
    except PackageError:
        raise
    except OSError as exc:
        raise PackageError(f"{folder}: unreadable ({exc})") from None
