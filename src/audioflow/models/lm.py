"""TokenLM: a causal transformer over the K codebooks of a codec (MusicGen's layout).

At each sequence step the K tokens (one per codebook, laid out by a
:class:`~audioflow.models.patterns.CodebookPattern`) are embedded by K tables and summed;
a causal transformer reads the optional condition prefix then the steps; K linear heads
predict the K tokens of the next step. With ``tie_embeddings`` each head scores codes
against its codebook's embedding table (weight tying, as GPT-2 and nanoGPT do): a code
is predicted from how close the state is to that code's embedding, so a small LM learns
from little data that a code tends to repeat or stay near the codes before it.
The special token ``card`` fills the positions the pattern leaves empty and starts the
sequence, so each table has ``card + 1`` rows while each head scores only the ``card``
real codes.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from audioflow.models.patterns import CodebookPattern
from audioflow.models.sampling import guided_logits, sample_next


class TokenLM(nn.Module):
    """Transformer LM over codec tokens.

    Args:
        pattern: codebook interleaving (its ``n_q`` is K).
        card: codes per codebook.
        dim: model dimension.
        num_heads: attention heads.
        num_layers: transformer layers.
        hidden_scale: feed-forward width as a multiple of ``dim``.
        dropout: dropout inside the transformer.
        max_steps: longest prefix + sequence the position table covers.
        conditioner: condition prefix module (None: unconditional).
        tie_embeddings: the heads score codes against the embedding tables (plus a bias
            per code) instead of having weights of their own.
    """

    def __init__(
        self,
        pattern: CodebookPattern,
        card: int,
        *,
        dim: int = 128,
        num_heads: int = 4,
        num_layers: int = 4,
        hidden_scale: int = 4,
        dropout: float = 0.0,
        max_steps: int = 512,
        conditioner: nn.Module | None = None,
        tie_embeddings: bool = False,
    ):
        super().__init__()
        self.pattern, self.card, self.n_q = pattern, int(card), pattern.n_q
        self.special = self.card
        self.max_steps = int(max_steps)
        self.embeddings = nn.ModuleList(nn.Embedding(card + 1, dim) for _ in range(self.n_q))
        self.positions = nn.Embedding(self.max_steps, dim)
        layer = nn.TransformerEncoderLayer(
            dim,
            num_heads,
            dim * hidden_scale,
            dropout,
            activation="gelu",
            batch_first=True,
            norm_first=True,
        )
        self.transformer = nn.TransformerEncoder(layer, num_layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(dim)
        if tie_embeddings:
            self.heads = None
            self.head_bias = nn.Parameter(torch.zeros(self.n_q, card))
        else:
            self.heads = nn.ModuleList(nn.Linear(dim, card) for _ in range(self.n_q))
        self.conditioner = conditioner

    # -- scoring -----------------------------------------------------------------------------
    def forward(
        self,
        inputs: torch.Tensor,
        infos: list[dict] | None = None,
        null: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Logits of the next step at every step, conditioned on the items' metadata.

        Args:
            inputs: (B, K, S) tokens in [0, card] (``card`` = special).
            infos: each item's metadata (what the conditioner reads), or None.
            null: bool (B,) items forced to the null condition (None: the conditioner's
                CFG dropout while training).

        Returns:
            (B, K, S, card).
        """
        return self.score(inputs, self.condition(infos, null))

    def score(self, inputs: torch.Tensor, prefix: torch.Tensor | None = None) -> torch.Tensor:
        """Logits (B, K, S, card) of ``inputs`` (B, K, S) after a (B, P, dim) prefix."""
        x = sum(emb(inputs[:, k]) for k, emb in enumerate(self.embeddings))  # (B, S, D)
        skip = 0
        if prefix is not None:
            x = torch.cat([prefix.to(x.dtype), x], dim=1)  # (B, P + S, D)
            skip = prefix.shape[1]
        length = x.shape[1]
        if length > self.max_steps:
            raise ValueError(
                f"{length} steps (prefix + sequence) exceed the LM's max_steps={self.max_steps}"
            )
        x = x + self.positions(torch.arange(length, device=x.device))
        mask = nn.Transformer.generate_square_subsequent_mask(length, device=x.device)
        h = self.norm(self.transformer(x, mask=mask, is_causal=True)[:, skip:])  # (B, S, D)
        if self.heads is not None:
            return torch.stack([head(h) for head in self.heads], dim=1)
        # tied: the real codes' rows of each table (not the special token's), scaled by
        # 1/sqrt(D) so that the logits start near unit variance (the rows are N(0, 1))
        table = torch.stack([emb.weight[: self.card] for emb in self.embeddings])  # (K, card, D)
        logits = torch.einsum("bsd,kcd->bksc", h, table) / table.shape[-1] ** 0.5
        return logits + self.head_bias[None, :, None, :]

    def shift(self, seq: torch.Tensor) -> torch.Tensor:
        """The inputs that predict ``seq`` (B, K, S): the special token, then seq[..., :-1]."""
        start = seq.new_full((*seq.shape[:2], 1), self.special)
        return torch.cat([start, seq[..., :-1]], dim=-1)

    def condition(self, infos: list[dict] | None, null: torch.Tensor | None = None):
        """The condition prefix of a batch's metadata (None without a conditioner)."""
        if self.conditioner is None or infos is None:
            return None
        return self.conditioner(self.conditioner.values_of(infos), null)

    def prepare(self, codes: torch.Tensor, frames: torch.Tensor):
        """Inputs, targets and target mask of codes (B, K, F) with ``frames`` (B,) real.

        Returns:
            ``(inputs, targets, valid)``: (B, K, S) each, S = F + the pattern's delay.
        """
        steps = codes.shape[-1]
        real = torch.arange(steps, device=codes.device)[None, None, :] < frames[:, None, None]
        # padding reads as the special token, as the steps past the end do when sampling
        codes = torch.where(real, codes, torch.full_like(codes, self.special))
        seq = self.pattern.interleave(codes, self.special)  # (B, K, S)
        valid = self.pattern.valid_mask(frames.cpu(), seq.shape[-1]).to(codes.device)
        return self.shift(seq), seq, valid

    def token_nll(self, logits, targets, valid) -> tuple[torch.Tensor, torch.Tensor]:
        """Summed negative log-likelihood (nats) and token count per codebook, (K,) each."""
        target = targets.clamp(max=self.card - 1)  # special positions are masked out
        # rows of ``card`` contiguous logits: a class dimension moved to axis 1 instead
        # (cross_entropy's (N, C, ...) layout) costs a strided softmax and copies, 1.4x the step
        nll = F.cross_entropy(
            logits.reshape(-1, logits.shape[-1]), target.reshape(-1), reduction="none"
        )
        nll = nll.view(target.shape) * valid  # (B, K, S)
        return nll.sum(dim=(0, 2)), valid.sum(dim=(0, 2))

    # -- sampling ----------------------------------------------------------------------------
    @torch.no_grad()
    def generate(
        self,
        frames: int,
        *,
        batch: int,
        prefix: torch.Tensor | None = None,
        prompt: torch.Tensor | None = None,
        cfg_scale: float = 1.0,
        temperature: float = 1.0,
        top_k: int = 0,
        top_p: float = 0.0,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Sample ``frames`` frames of codes, continuing ``prompt`` when given.

        Args:
            frames: codec frames to return (prompt included).
            batch: items to sample.
            prefix: condition prefix (B, P, dim) or None.
            prompt: (B, K, Fp) codes the samples start with (Fp < frames), or None.
            cfg_scale: classifier-free guidance scale (1 = conditional logits only; needs
                a conditioner to take effect).
            temperature, top_k, top_p: see :func:`~audioflow.models.sampling.sample_next`.
            generator: random generator (seeded: repeatable samples).

        Returns:
            Long (B, K, frames).
        """
        device = self.positions.weight.device
        steps = self.pattern.sequence_length(frames)
        seq = torch.full((batch, self.n_q, steps), self.special, dtype=torch.long, device=device)
        known = torch.zeros_like(seq, dtype=torch.bool)
        if prompt is not None:
            given = prompt.shape[-1]
            pseq = self.pattern.interleave(prompt.to(device), self.special)
            valid = self.pattern.valid_mask(given, pseq.shape[-1]).to(device)
            valid = valid.expand_as(pseq)
            seq[..., : pseq.shape[-1]] = torch.where(valid, pseq, seq[..., : pseq.shape[-1]])
            known[..., : pseq.shape[-1]] = valid
        wanted = self.pattern.valid_mask(frames, steps).to(device)[0]  # (K, S)
        guided = prefix is not None and self.conditioner is not None and cfg_scale != 1.0
        if guided:
            prefix = torch.cat([prefix, self.conditioner.null_condition(batch)], dim=0)
        for step in range(steps):
            if bool(known[..., step].all()):
                continue
            inputs = self.shift(seq[..., : step + 1])
            if guided:
                inputs = torch.cat([inputs, inputs], dim=0)
            logits = self.score(inputs, prefix)[:, :, -1]  # (B or 2B, K, card)
            if guided:
                logits = guided_logits(logits[:batch], logits[batch:], cfg_scale)
            tokens = sample_next(
                logits, temperature=temperature, top_k=top_k, top_p=top_p, generator=generator
            )  # (B, K)
            tokens = torch.where(wanted[:, step], tokens, torch.full_like(tokens, self.special))
            seq[..., step] = torch.where(known[..., step], seq[..., step], tokens)
        return self.pattern.deinterleave(seq)
