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
        x = self._embed(inputs)  # (B, S, D)
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
        return self._logits(h)

    def _embed(self, inputs: torch.Tensor) -> torch.Tensor:
        """(B, S, D): the sum of the K codebooks' embeddings of ``inputs`` (B, K, S)."""
        return sum(emb(inputs[:, k]) for k, emb in enumerate(self.embeddings))

    def _logits(self, h: torch.Tensor) -> torch.Tensor:
        """Logits (B, K, S, card) of the final states ``h`` (B, S, D)."""
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
        todo = [step for step in range(steps) if not bool(known[..., step].all())]
        if not todo:
            return self.pattern.deinterleave(seq)
        # The steps before the first one to sample (the prompt's) are read in one pass; then
        # one step at a time, each attending to the keys and values kept from the steps
        # before it: a step costs the same at the end of the sequence as at its start.
        first = todo[0]
        inputs = self.shift(seq[..., : first + 1])
        x = self._embed(torch.cat([inputs, inputs]) if guided else inputs)
        if prefix is not None:
            x = torch.cat([prefix.to(x.dtype), x], dim=1)
        cache = _KVCache(self.transformer.layers, x.shape[0], x.shape[1] + steps - first - 1, x)
        h = self._cached(x, cache)
        for step in range(first, steps):
            if step > first:
                token = seq[..., step - 1 : step]  # the input of step s is the token of s - 1
                h = self._cached(self._embed(torch.cat([token, token]) if guided else token), cache)
            if not bool(known[..., step].all()):
                logits = self._logits(self.norm(h[:, -1:]))[:, :, 0]  # (B or 2B, K, card)
                if guided:
                    logits = guided_logits(logits[:batch], logits[batch:], cfg_scale)
                tokens = sample_next(
                    logits, temperature=temperature, top_k=top_k, top_p=top_p, generator=generator
                )  # (B, K)
                tokens = torch.where(wanted[:, step], tokens, torch.full_like(tokens, self.special))
                seq[..., step] = torch.where(known[..., step], seq[..., step], tokens)
        return self.pattern.deinterleave(seq)

    def _cached(self, x: torch.Tensor, cache: _KVCache) -> torch.Tensor:
        """The transformer's output states (B, n, D) for the next n steps' inputs ``x``
        (B, n, D, embedded), given the steps in ``cache`` (which then holds these too).

        The same computation as ``self.transformer`` in eval mode (pre-norm layers, no
        dropout) over the whole sequence with its causal mask, restricted to the new rows.
        """
        start, n = cache.length, x.shape[1]
        if start + n > self.max_steps:
            raise ValueError(
                f"{start + n} steps (prefix + sequence) exceed the LM's max_steps={self.max_steps}"
            )
        x = x + self.positions(torch.arange(start, start + n, device=x.device))
        for index, layer in enumerate(self.transformer.layers):
            attn = layer.self_attn
            heads = attn.num_heads
            q, k, v = F.linear(layer.norm1(x), attn.in_proj_weight, attn.in_proj_bias).chunk(3, -1)
            q, k, v = (t.unflatten(-1, (heads, -1)).transpose(1, 2) for t in (q, k, v))
            keys, values = cache.append(index, k, v)
            # the first pass reads from an empty cache: causal over its own rows; later
            # passes are one step, which may read every step before it
            out = F.scaled_dot_product_attention(q, keys, values, is_causal=start == 0 and n > 1)
            x = x + attn.out_proj(out.transpose(1, 2).flatten(2))
            x = x + layer.linear2(layer.activation(layer.linear1(layer.norm2(x))))
        cache.length += n
        return x


class _KVCache:
    """Keys and values (B, heads, steps, head dim) of each layer for the steps read so far,
    in buffers of the whole sequence's length (no copy per step)."""

    def __init__(self, layers, batch: int, total: int, like: torch.Tensor):
        attn = layers[0].self_attn
        shape = (len(layers), 2, batch, attn.num_heads, total, attn.embed_dim // attn.num_heads)
        self.buffer = like.new_empty(shape)
        self.length = 0

    def append(self, layer: int, keys: torch.Tensor, values: torch.Tensor):
        """Store the new steps' keys and values; return every step's so far."""
        end = self.length + keys.shape[2]
        self.buffer[layer, 0, :, :, self.length : end] = keys
        self.buffer[layer, 1, :, :, self.length : end] = values
        return self.buffer[layer, 0, :, :, :end], self.buffer[layer, 1, :, :, :end]
