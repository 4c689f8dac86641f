"""Conditioners: turn an item's sidecar metadata into the LM's condition prefix.

Each conditioner reads one manifest field (``class``, ``text``, ...) and returns one
condition vector per item, which the LM prepends to the token sequence. Every conditioner
also owns a learned **null** vector: during training a share ``dropout`` of the items get
the null vector instead of their condition (classifier-free-guidance dropout), so the same
network also learns the unconditional distribution; sampling then mixes both
(``logits_uncond + scale * (logits_cond - logits_uncond)``).

- ``label``: a learned lookup table over the values of a field seen in the train manifest;
- ``text``: a small byte-level encoder (embedding, convolution, masked mean) over a text
  field; no pretrained model, nothing downloaded.
"""

from __future__ import annotations

import torch
from torch import nn

CONDITIONERS = ("label", "text")


class Conditioner(nn.Module):
    """Base: ``forward(values)`` -> (B, 1, dim) with CFG dropout while training.

    Args:
        field: the manifest field read (e.g. ``class``).
        dim: condition vector size (the LM's model dimension).
        dropout: probability that a training item gets the null condition.
    """

    def __init__(self, field: str, dim: int, dropout: float = 0.0):
        super().__init__()
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"conditioner dropout={dropout}: must lie in [0, 1)")
        self.field, self.dim, self.dropout = field, int(dim), float(dropout)
        self.null = nn.Parameter(torch.randn(self.dim) * 0.02)

    def encode(self, values: list) -> torch.Tensor:
        """Values (one per item) -> (B, dim)."""
        raise NotImplementedError

    def values_of(self, infos: list[dict]) -> list:
        """The field's value in each item's metadata (None when missing)."""
        return [info.get(self.field) for info in infos]

    def forward(self, values: list, null: torch.Tensor | None = None) -> torch.Tensor:
        """Condition prefix of a batch.

        Args:
            values: one field value per item.
            null: bool (B,) items that get the null condition; None draws them with
                probability ``dropout`` while training (none in eval mode).

        Returns:
            (B, 1, dim).
        """
        cond = self.encode(values)  # (B, D)
        if null is None and self.training and self.dropout > 0:
            null = torch.rand(len(values), device=cond.device) < self.dropout
        if null is not None:
            cond = torch.where(null.to(cond.device)[:, None], self.null.expand_as(cond), cond)
        return cond[:, None, :]

    def null_condition(self, batch: int) -> torch.Tensor:
        """The unconditional prefix, (B, 1, dim)."""
        return self.null.expand(batch, 1, self.dim)


class LabelConditioner(Conditioner):
    """A learned embedding per label value.

    Args:
        field: manifest field holding the label.
        labels: the known values (their order fixes the table rows).
        dim: embedding size.
        dropout: CFG dropout probability.
    """

    def __init__(self, field: str, labels: list[str], dim: int, dropout: float = 0.0):
        super().__init__(field, dim, dropout)
        if not labels:
            raise ValueError(f"label conditioner: no value of field {field!r} in the train data")
        self.labels = [str(label) for label in labels]
        self._index = {label: i for i, label in enumerate(self.labels)}
        self.table = nn.Embedding(len(self.labels), self.dim)

    def encode(self, values: list) -> torch.Tensor:
        try:
            ids = [self._index[str(v)] for v in values]
        except KeyError as exc:
            raise ValueError(
                f"label conditioner: {self.field}={exc.args[0]!r} was not in the train data "
                f"(known: {', '.join(self.labels)})"
            ) from None
        return self.table(torch.tensor(ids, device=self.table.weight.device))


class TextConditioner(Conditioner):
    """A byte-level text encoder: embedding, one convolution, masked mean, projection.

    Args:
        field: manifest field holding the text (missing text reads as empty).
        dim: output size.
        dropout: CFG dropout probability.
        max_bytes: UTF-8 bytes kept per text.
    """

    def __init__(self, field: str, dim: int, dropout: float = 0.0, max_bytes: int = 64):
        super().__init__(field, dim, dropout)
        self.max_bytes = int(max_bytes)
        self.embedding = nn.Embedding(257, self.dim, padding_idx=0)  # byte b -> b + 1
        self.conv = nn.Conv1d(self.dim, self.dim, 3, padding=1)
        self.proj = nn.Linear(self.dim, self.dim)

    def tokenize(self, values: list) -> torch.Tensor:
        """Texts -> byte ids (B, L), 0-padded."""
        encoded = [str(v or "").encode("utf-8")[: self.max_bytes] for v in values]
        length = max(1, max(len(b) for b in encoded))
        ids = torch.zeros(len(values), length, dtype=torch.long)
        for i, data in enumerate(encoded):
            ids[i, : len(data)] = torch.tensor(list(data), dtype=torch.long) + 1
        return ids

    def encode(self, values: list) -> torch.Tensor:
        ids = self.tokenize(values).to(self.embedding.weight.device)  # (B, L)
        mask = (ids > 0).unsqueeze(-1).float()  # (B, L, 1)
        x = self.embedding(ids)  # (B, L, D)
        x = torch.nn.functional.gelu(self.conv(x.transpose(1, 2))).transpose(1, 2)
        pooled = (x * mask).sum(1) / mask.sum(1).clamp(min=1.0)  # (B, D)
        return self.proj(pooled)


def build_conditioner(
    kind: str, *, field: str, dim: int, dropout: float, labels: list[str] | None = None
) -> Conditioner:
    """The conditioner ``kind`` (``label`` needs the known ``labels``).

    Raises:
        ValueError: unknown kind or bad arguments (the message names them).
    """
    if kind == "label":
        return LabelConditioner(field, list(labels or []), dim, dropout)
    if kind == "text":
        return TextConditioner(field, dim, dropout)
    raise ValueError(f"conditioner.type={kind!r} is not known: choose {', '.join(CONDITIONERS)}")
