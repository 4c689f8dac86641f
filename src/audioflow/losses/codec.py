"""The weighted reconstruction objective of a codec: waveform, SI-SNR, spectral and
commitment terms."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from audioflow.losses.spectral import MultiResolutionSTFTLoss, MultiScaleMelLoss
from audioflow.metrics.codec import si_snr

TERMS = ("l1", "l2", "mel", "mrstft", "sisnr_loss", "commitment")


class ReconstructionLoss(nn.Module):
    """Sum of weighted reconstruction terms; a term with weight 0 is not computed.

    Args:
        sample_rate: audio sample rate (for the mel filters).
        weights: term -> weight, terms among ``TERMS`` (missing terms weigh 0).
        mel_kwargs: arguments of :class:`MultiScaleMelLoss`.
        mrstft_kwargs: arguments of :class:`MultiResolutionSTFTLoss`.

    Raises:
        ValueError: an unknown term or a negative weight.
    """

    def __init__(
        self,
        sample_rate: int,
        weights: dict[str, float],
        mel_kwargs: dict | None = None,
        mrstft_kwargs: dict | None = None,
    ):
        super().__init__()
        unknown = sorted(set(weights) - set(TERMS))
        if unknown:
            raise ValueError(f"losses.{unknown[0]}: unknown term; terms are {', '.join(TERMS)}")
        negative = [k for k, w in weights.items() if w < 0]
        if negative:
            raise ValueError(f"losses.{negative[0]}={weights[negative[0]]}: weights must be >= 0")
        self.weights = {k: float(w) for k, w in weights.items() if w > 0}
        self.mel = (
            MultiScaleMelLoss(sample_rate, **(mel_kwargs or {})) if "mel" in self.weights else None
        )
        self.mrstft = (
            MultiResolutionSTFTLoss(**(mrstft_kwargs or {})) if "mrstft" in self.weights else None
        )

    def forward(
        self, estimate: torch.Tensor, target: torch.Tensor, penalty: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Weighted total and the unweighted terms.

        Args:
            estimate: (B, C, T) reconstruction.
            target: (B, C, T) original.
            penalty: the quantizer's commitment loss.

        Returns:
            (total, {term: value}).
        """
        terms: dict[str, torch.Tensor] = {}
        if "l1" in self.weights:
            terms["l1"] = F.l1_loss(estimate, target)
        if "l2" in self.weights:
            terms["l2"] = F.mse_loss(estimate, target)
        if self.mel is not None:
            terms["mel"] = self.mel(estimate, target)
        if self.mrstft is not None:
            terms["mrstft"] = self.mrstft(estimate, target)
        if "sisnr_loss" in self.weights:
            # negative SI-SNR (dB): rewards the waveform's shape whatever its scale, so unlike
            # L1/L2 it never favours a quiet output while the phase is still wrong (silent
            # targets left out: their SI-SNR is about -100 dB whatever the estimate)
            terms["sisnr_loss"] = -si_snr(estimate, target).nan_to_num(0.0)
        if "commitment" in self.weights:
            terms["commitment"] = penalty
        total = sum(self.weights[k] * v for k, v in terms.items())
        if not terms:
            total = estimate.new_zeros(())
        return total, terms
