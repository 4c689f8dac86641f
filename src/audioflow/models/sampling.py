"""Next-token sampling: temperature, top-k and top-p (nucleus) filtering, CFG mixing."""

from __future__ import annotations

import torch


def guided_logits(cond: torch.Tensor, uncond: torch.Tensor, scale: float) -> torch.Tensor:
    """Classifier-free guidance: ``uncond + scale * (cond - uncond)`` (scale 1 = cond)."""
    return uncond + scale * (cond - uncond)


def sample_next(
    logits: torch.Tensor,
    *,
    temperature: float = 1.0,
    top_k: int = 0,
    top_p: float = 0.0,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Draw one token per row of ``logits`` (..., card).

    Args:
        logits: unnormalised scores, last dimension the vocabulary.
        temperature: divides the logits; 0 picks the most likely token (greedy).
        top_k: keep only the k most likely tokens (0 = all).
        top_p: keep the smallest set of most likely tokens whose probability reaches p
            (0 or 1 = all).
        generator: the random generator (a seeded one makes sampling repeatable).

    Returns:
        Long tensor of the leading shape (...).

    Raises:
        ValueError: a negative temperature or top_k, or top_p outside [0, 1].
    """
    if temperature < 0 or top_k < 0 or not 0.0 <= top_p <= 1.0:
        raise ValueError(
            f"sampling temperature={temperature}, top_k={top_k}, top_p={top_p}: need "
            "temperature >= 0, top_k >= 0 and 0 <= top_p <= 1"
        )
    shape = logits.shape[:-1]
    flat = logits.reshape(-1, logits.shape[-1]).float()
    if temperature == 0:
        return flat.argmax(-1).reshape(shape)
    probs = torch.softmax(flat / temperature, dim=-1)
    if 0 < top_k < probs.shape[-1]:
        kth = probs.topk(top_k, dim=-1).values[:, -1:]
        probs = torch.where(probs < kth, torch.zeros_like(probs), probs)
    if 0 < top_p < 1:
        sorted_probs, order = probs.sort(dim=-1, descending=True)
        cumulative = sorted_probs.cumsum(-1)
        # drop a token once the tokens before it already reach top_p (the first one stays)
        drop = (cumulative - sorted_probs) >= top_p * cumulative[:, -1:]
        sorted_probs = sorted_probs.masked_fill(drop, 0.0)
        probs = torch.zeros_like(probs).scatter(-1, order, sorted_probs)
    tokens = torch.multinomial(probs, 1, generator=generator)
    return tokens.reshape(shape)
