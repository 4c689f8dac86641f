"""Residual vector quantizer: codebook learning, usage, dead codes, dropout bandwidths."""

import math

import pytest
import torch

from audioflow.models.quantizer import EuclideanCodebook, ResidualVectorQuantizer, kmeans


def clustered(n: int, centers: torch.Tensor, noise: float = 0.01) -> torch.Tensor:
    """n vectors drawn around the given centers (K, D)."""
    idx = torch.randint(0, centers.shape[0], (n,))
    return centers[idx] + noise * torch.randn(n, centers.shape[1])


def test_kmeans_finds_well_separated_clusters():
    torch.manual_seed(0)
    centers = torch.eye(4) * 10
    means = kmeans(clustered(400, centers), 4, num_iters=20)
    # every true center has a centroid next to it
    assert torch.cdist(centers, means).min(dim=1).values.max() < 0.5


@pytest.mark.parametrize("init", ["kmeans", "random"])
def test_codebook_initialises_from_data_and_uses_many_codes(init):
    torch.manual_seed(0)
    book = EuclideanCodebook(8, 16, init=init, threshold_ema_dead_code=0)
    book.train()
    x = torch.randn(1024, 8) * 3 + 5
    book(x)
    assert bool(book.inited)
    # codes were taken from the data, not left at their N(0, 1) initial values
    assert (book.embed.mean() - 5).abs() < 1.5
    _, codes = book(x)
    assert torch.unique(codes).numel() >= 12


def test_ema_moves_codes_to_their_cluster_means():
    torch.manual_seed(0)
    centers = torch.eye(6)[:4] * 10
    book = EuclideanCodebook(6, 4, decay=0.5, init="kmeans", threshold_ema_dead_code=0)
    # start every code off its cluster (as if initialised on other data)
    with torch.no_grad():
        book.inited.fill_(True)
        book.embed.copy_(centers + 2.0)
        book.embed_avg.copy_(book.embed)
        book.cluster_size.fill_(1.0)
    book.train()
    for _ in range(30):
        book(clustered(512, centers))
    assert torch.cdist(centers, book.embed).min(dim=1).values.max() < 0.1


def test_dead_codes_are_replaced_by_batch_vectors():
    torch.manual_seed(0)
    book = EuclideanCodebook(4, 32, decay=0.5, init="random", threshold_ema_dead_code=1.0)
    book.train()
    book(torch.randn(256, 4))
    # the data moves far away: every code becomes dead and must be replaced from the batch
    far = torch.randn(256, 4) * 0.1 + 100
    replaced = 0
    for _ in range(5):
        book(far)
        replaced += book.last_replaced
    assert replaced >= 16
    assert (book.embed - 100).abs().mean() < 5  # the codebook now lives where the data is
    _, codes = book(far)
    assert torch.unique(codes).numel() > 8


def test_without_replacement_dead_codes_stay_unused():
    torch.manual_seed(0)
    book = EuclideanCodebook(4, 32, decay=0.5, init="random", threshold_ema_dead_code=0)
    book.train()
    book(torch.randn(256, 4))
    far = torch.randn(256, 4) * 0.1 + 100
    for _ in range(5):
        _, codes = book(far)
    assert book.last_replaced == 0
    assert torch.unique(codes).numel() < 8


def test_rvq_residual_stages_reduce_error_and_eval_is_deterministic():
    torch.manual_seed(0)
    rvq = ResidualVectorQuantizer(dimension=8, n_q=4, bins=32, threshold_ema_dead_code=0)
    x = torch.randn(4, 8, 64)
    rvq.train()
    for _ in range(10):
        rvq(x, frame_rate=50)
    rvq.eval()
    errors = []
    for n in range(1, 5):
        rvq.set_num_codebooks(n)
        q = rvq(x, frame_rate=50)
        errors.append((q.x - x).pow(2).mean().item())
        assert q.codes.shape == (4, n, 64)
        assert torch.equal(rvq.encode(x), q.codes)
        assert torch.allclose(rvq.decode(q.codes), q.x, atol=1e-5)
    assert errors == sorted(errors, reverse=True) and errors[-1] < errors[0] * 0.8


def test_quantizer_dropout_covers_every_bandwidth():
    torch.manual_seed(0)
    rvq = ResidualVectorQuantizer(dimension=4, n_q=4, bins=16, q_dropout=True)
    rvq.train()
    x = torch.randn(2, 4, 10)
    seen = {round(float(rvq(x, frame_rate=50).bandwidth), 6) for _ in range(60)}
    assert seen == {round(n * math.log2(16) * 50 / 1000, 6) for n in range(1, 5)}
    rvq.eval()  # no dropout outside training
    assert {rvq(x, frame_rate=50).codes.shape[1] for _ in range(5)} == {4}


def test_commitment_loss_and_straight_through_gradient():
    rvq = ResidualVectorQuantizer(dimension=4, n_q=2, bins=8)
    rvq.train()
    x = torch.randn(2, 4, 16, requires_grad=True)
    q = rvq(x, frame_rate=50)
    assert q.penalty.item() > 0
    (q.x.sum() + q.penalty).backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_set_num_codebooks_rejects_out_of_range():
    rvq = ResidualVectorQuantizer(dimension=4, n_q=2, bins=8)
    with pytest.raises(ValueError, match=r"\[1, 2\]"):
        rvq.set_num_codebooks(3)


def test_dropout_draws_continue_after_a_state_round_trip():
    torch.manual_seed(0)
    x = torch.randn(2, 4, 10)
    rvq = ResidualVectorQuantizer(dimension=4, n_q=4, bins=16, q_dropout=True).train()
    for _ in range(5):
        rvq(x, frame_rate=50)
    resumed = ResidualVectorQuantizer(dimension=4, n_q=4, bins=16, q_dropout=True).train()
    resumed.load_state_dict(rvq.state_dict())
    expected = [rvq(x, frame_rate=50).codes.shape[1] for _ in range(8)]
    assert [resumed(x, frame_rate=50).codes.shape[1] for _ in range(8)] == expected


def test_a_replaced_code_is_not_replaced_again_at_once():
    """Codes replaced once get time to attract vectors: on a stable distribution the
    replacements stop (they were ~all unused codes at every update: the size a replaced
    code started from fell under the threshold after one unused step)."""
    torch.manual_seed(0)
    # 400 vectors for 1024 codes: most codes are unused at any one update, as in a small
    # batch at a low frame rate
    book = EuclideanCodebook(8, 1024, decay=0.99, init="kmeans", threshold_ema_dead_code=0.1)
    book.train()
    data = torch.randn(4096, 8)
    replaced = []
    for _ in range(30):
        book(data[torch.randint(0, 4096, (400,))])
        replaced.append(book.last_replaced)
    # the first updates replace the codes k-means left empty; then replacements stop
    assert sum(replaced[10:]) <= 5, replaced


def test_rvq_hands_the_encoder_the_gradient_once():
    """Straight-through over the whole stack: d(quantized)/d(x) is the identity whatever
    the number of codebooks (each layer's own straight-through summed gave n_q x)."""
    torch.manual_seed(0)
    rvq = ResidualVectorQuantizer(dimension=4, n_q=6, bins=16, threshold_ema_dead_code=0)
    rvq.train()
    x = torch.randn(2, 4, 50, requires_grad=True)
    out = rvq(x, frame_rate=50.0)
    out.x.sum().backward()
    assert torch.allclose(x.grad, torch.ones_like(x))
