"""Residual vector quantization (RVQ) with EMA codebooks, as in SoundStream and EnCodec.

Each codebook is learned without gradients: an exponential moving average of the vectors
assigned to each code (cluster size and sum) moves the code to their mean. Codes are
initialised from data (k-means on the first batch, or random vectors of it), codes that
stopped being used are replaced by vectors of the current batch, and a commitment loss
pulls the encoder output towards its quantized value. The residual stack quantizes what
the previous codebooks left; quantizer dropout trains with a random number of codebooks
so that one model serves several bandwidths.

Under torch.distributed the codebook statistics are averaged across processes and the
data-dependent steps (init, dead-code replacement) are broadcast from rank 0, so every
process keeps identical codebooks.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

import torch
from torch import distributed as dist
from torch import nn
from torch.nn import functional as F

INITS = ("kmeans", "random")


def _distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def _all_reduce_mean(tensor: torch.Tensor) -> None:
    if _distributed():
        dist.all_reduce(tensor)
        tensor /= dist.get_world_size()


def _broadcast(tensor: torch.Tensor) -> None:
    if _distributed():
        dist.broadcast(tensor, src=0)


def sample_vectors(samples: torch.Tensor, num: int) -> torch.Tensor:
    """Draw ``num`` rows of ``samples`` (N, D), without replacement when there are enough."""
    n = samples.shape[0]
    if n >= num:
        index = torch.randperm(n, device=samples.device)[:num]
    else:
        index = torch.randint(0, n, (num,), device=samples.device)
    return samples[index]


def kmeans(samples: torch.Tensor, num_clusters: int, num_iters: int = 10) -> torch.Tensor:
    """Plain k-means (Lloyd) on (N, D) samples; returns (num_clusters, D) centroids."""
    means = sample_vectors(samples, num_clusters)
    for _ in range(num_iters):
        buckets = torch.cdist(samples, means).argmin(dim=-1)
        counts = torch.bincount(buckets, minlength=num_clusters)
        sums = torch.zeros_like(means).index_add_(0, buckets, samples)
        # empty clusters keep their previous centroid instead of collapsing to zero
        means = torch.where((counts > 0)[:, None], sums / counts.clamp(min=1)[:, None], means)
    return means


class EuclideanCodebook(nn.Module):
    """One codebook of ``bins`` vectors of size ``dim``, learned by EMA.

    Args:
        dim: vector dimension.
        bins: number of codes.
        decay: EMA decay of the cluster statistics.
        epsilon: Laplace smoothing of cluster sizes.
        init: "kmeans" (k-means on the first training batch) or "random" (its vectors).
        kmeans_iters: k-means iterations.
        threshold_ema_dead_code: a code whose EMA cluster size falls below this is
            replaced by a vector of the current batch (0 = never).
    """

    def __init__(
        self,
        dim: int,
        bins: int,
        decay: float = 0.99,
        epsilon: float = 1e-5,
        init: str = "kmeans",
        kmeans_iters: int = 10,
        threshold_ema_dead_code: float = 2.0,
    ):
        super().__init__()
        if init not in INITS:
            raise ValueError(f"unknown codebook init {init!r}: use one of {', '.join(INITS)}")
        self.dim, self.bins, self.decay, self.epsilon = dim, bins, decay, epsilon
        self.init, self.kmeans_iters = init, kmeans_iters
        self.threshold_ema_dead_code = threshold_ema_dead_code
        self.register_buffer("inited", torch.tensor(False))
        self.register_buffer("cluster_size", torch.zeros(bins))
        self.register_buffer("embed", torch.randn(bins, dim))
        self.register_buffer("embed_avg", self.embed.clone())
        self.last_replaced = 0  # dead codes replaced at the last training step (for tests/logs)

    @torch.no_grad()
    def _init_from(self, x: torch.Tensor) -> None:
        embed = (
            kmeans(x, self.bins, self.kmeans_iters)
            if self.init == "kmeans"
            else (sample_vectors(x, self.bins))
        )
        _broadcast(embed)
        # start the statistics from the batch's real assignment counts, so that codes no
        # vector chose are seen as dead and replaced at once
        counts = torch.bincount(torch.cdist(x, embed).argmin(-1), minlength=self.bins).float()
        _all_reduce_mean(counts)
        self.embed.copy_(embed)
        self.cluster_size.copy_(counts)
        self.embed_avg.copy_(embed * counts[:, None])
        self.inited.fill_(True)

    @torch.no_grad()
    def _replace_dead_codes(self, x: torch.Tensor) -> None:
        dead = self.cluster_size < self.threshold_ema_dead_code
        _broadcast(dead)  # all ranks hold the same statistics, this keeps them exactly equal
        self.last_replaced = int(dead.sum())
        if not self.last_replaced:
            return
        fresh = sample_vectors(x, self.bins)
        _broadcast(fresh)
        # A replaced code starts at the mean size of a code (batch vectors / bins), not at
        # the threshold: from the threshold one unused step (size * decay) made it dead
        # again, so every code the last batch did not pick was replaced at every update
        # and the codebook never settled. From the mean size it has
        # log(mean / threshold) / (1 - decay) updates to attract vectors.
        size = max(float(self.cluster_size.sum()) / self.bins, self.threshold_ema_dead_code)
        self.embed.copy_(torch.where(dead[:, None], fresh, self.embed))
        self.embed_avg.copy_(torch.where(dead[:, None], fresh * size, self.embed_avg))
        self.cluster_size.masked_fill_(dead, size)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Nearest code index of every row of ``x`` (N, D) -> (N,)."""
        embed = self.embed.to(x.dtype)
        # ||x - e||^2 = ||x||^2 - 2 x.e + ||e||^2; ||x||^2 does not change the argmin
        dist_ = -2 * x @ embed.t() + embed.pow(2).sum(dim=1)[None]
        return dist_.argmin(dim=-1)

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """Code indices (...) -> vectors (..., D)."""
        return F.embedding(codes, self.embed)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Quantize (N, D) vectors; in training also update the codebook.

        Returns:
            (quantized (N, D), codes (N,)).
        """
        x = x.float()
        if self.training and not bool(self.inited):
            self._init_from(x.detach())
        codes = self.encode(x)
        quantized = self.decode(codes)
        if self.training:
            with torch.no_grad():
                onehot = F.one_hot(codes, self.bins).type(x.dtype)  # (N, bins)
                size, total = onehot.sum(0), onehot.t() @ x
                _all_reduce_mean(size)
                _all_reduce_mean(total)
                self.cluster_size.mul_(self.decay).add_(size, alpha=1 - self.decay)
                self.embed_avg.mul_(self.decay).add_(total, alpha=1 - self.decay)
                n = self.cluster_size.sum()
                smoothed = (self.cluster_size + self.epsilon) / (n + self.bins * self.epsilon) * n
                self.embed.copy_(self.embed_avg / smoothed[:, None])
                if self.threshold_ema_dead_code > 0:
                    self._replace_dead_codes(x)
        return quantized, codes


class VectorQuantizer(nn.Module):
    """A codebook on (B, D, T) frames with commitment loss and straight-through gradients.

    Args:
        dim: frame dimension D.
        bins: codebook size.
        **codebook_kwargs: passed to :class:`EuclideanCodebook`.
    """

    def __init__(self, dim: int, bins: int, **codebook_kwargs):
        super().__init__()
        self.codebook = EuclideanCodebook(dim, bins, **codebook_kwargs)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Returns (quantized (B, D, T), codes (B, T), commitment loss)."""
        b, d, t = x.shape
        flat = x.transpose(1, 2).reshape(b * t, d)
        quantized, codes = self.codebook(flat)
        quantized = quantized.view(b, t, d).transpose(1, 2).to(x.dtype)
        commit = F.mse_loss(quantized.detach(), x) if self.training else x.new_zeros(())
        # straight-through: forward uses the code, backward passes the gradient to x
        quantized = x + (quantized - x).detach()
        return quantized, codes.view(b, t), commit

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        b, d, t = x.shape
        return self.codebook.encode(x.transpose(1, 2).reshape(b * t, d).float()).view(b, t)

    def decode(self, codes: torch.Tensor) -> torch.Tensor:  # (B, T) -> (B, D, T)
        return self.codebook.decode(codes).transpose(1, 2)


@dataclass
class QuantizedResult:
    """Output of :class:`ResidualVectorQuantizer` (and of a codec's forward).

    Attributes:
        x: quantized latent (B, D, T) for the quantizer, reconstruction for the codec.
        codes: (B, K, T) code indices, K = number of codebooks used.
        bandwidth: kbps of the codes at the model's frame rate.
        penalty: commitment loss (scalar tensor).
        metrics: extra values to log (codebook usage, dead-code replacements).
    """

    x: torch.Tensor
    codes: torch.Tensor
    bandwidth: torch.Tensor
    penalty: torch.Tensor
    metrics: dict = field(default_factory=dict)


class ResidualVectorQuantizer(nn.Module):
    """A stack of ``n_q`` vector quantizers, each coding the previous residual.

    Args:
        dimension: latent dimension D.
        n_q: number of codebooks.
        bins: codes per codebook (log2(bins) bits per codebook per frame).
        q_dropout: in training, use a random number of codebooks in [1, n_q] per batch.
        **codebook_kwargs: passed to every :class:`EuclideanCodebook` (decay, epsilon,
            init, kmeans_iters, threshold_ema_dead_code).
    """

    def __init__(
        self,
        dimension: int = 128,
        n_q: int = 8,
        bins: int = 1024,
        q_dropout: bool = False,
        **codebook_kwargs,
    ):
        super().__init__()
        self.dimension, self.max_n_q, self.n_q, self.bins = dimension, n_q, n_q, bins
        self.q_dropout = q_dropout
        self.layers = nn.ModuleList(
            VectorQuantizer(dimension, bins, **codebook_kwargs) for _ in range(n_q)
        )
        # Training forwards done; the dropout draw is a function of it, so every rank draws
        # the same count and a resumed run (the buffer is in the state) continues the sequence.
        self.register_buffer("dropout_draws", torch.zeros((), dtype=torch.long))

    def set_num_codebooks(self, n: int) -> None:
        """Use the first ``n`` codebooks when not dropping out (evaluation bandwidth)."""
        if not 1 <= n <= self.max_n_q:
            raise ValueError(f"num codebooks must be in [1, {self.max_n_q}], got {n}")
        self.n_q = n

    def bandwidth(self, n_q: int, frame_rate: float) -> float:
        """kbps of ``n_q`` codebooks at ``frame_rate`` frames per second."""
        return n_q * math.log2(self.bins) * frame_rate / 1000

    def forward(self, x: torch.Tensor, frame_rate: float) -> QuantizedResult:
        """Quantize latent frames (B, D, T)."""
        n_q = self.n_q
        if self.training and self.q_dropout:
            n_q = random.Random(int(self.dropout_draws)).randint(1, self.max_n_q)
            self.dropout_draws += 1
        residual, quantized = x, torch.zeros_like(x)
        codes, losses, metrics = [], [], {}
        for i, layer in enumerate(self.layers[:n_q]):
            q, c, commit = layer(residual)
            q = q.detach()  # the codes' values; the gradient goes straight through below
            residual = residual - q
            quantized = quantized + q
            codes.append(c)
            losses.append(commit)
            if self.training:
                used = torch.unique(c).numel() / self.bins
                metrics[f"codebook_usage_{i}"] = used
                metrics[f"dead_codes_replaced_{i}"] = layer.codebook.last_replaced
        if self.training:
            # One straight-through estimator over the whole stack: the encoder gets the
            # decoder's gradient once. Summing each layer's straight-through output (as
            # before) handed it n_q times over, so clipping the total norm starved the
            # decoder (EnCodec's issue 25 has the same fix).
            quantized = x + (quantized - x).detach()
        bw = torch.tensor(self.bandwidth(n_q, frame_rate), device=x.device)
        return QuantizedResult(
            quantized, torch.stack(codes, 1), bw, torch.stack(losses).mean(), metrics
        )

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Latent (B, D, T) -> codes (B, n_q, T) with the current number of codebooks."""
        residual, codes = x, []
        for layer in self.layers[: self.n_q]:
            c = layer.encode(residual)
            residual = residual - layer.decode(c).to(residual.dtype)
            codes.append(c)
        return torch.stack(codes, 1)

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """Codes (B, K, T), K <= n_q -> latent (B, D, T)."""
        out = None
        for k in range(codes.shape[1]):
            q = self.layers[k].decode(codes[:, k])
            out = q if out is None else out + q
        return out
