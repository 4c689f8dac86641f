"""TokenLM: sampling filters, CFG dropout training the unconditional path, seeded generation."""

from __future__ import annotations

import pytest
import torch

from audioflow.models.conditioners import LabelConditioner, TextConditioner
from audioflow.models.lm import TokenLM
from audioflow.models.patterns import build_pattern
from audioflow.models.sampling import guided_logits, sample_next

CARD, K = 16, 3


def _lm(dropout: float = 0.0, seed: int = 0, tie: bool = False) -> TokenLM:
    torch.manual_seed(seed)
    conditioner = LabelConditioner("class", ["a", "b"], 32, dropout)
    return TokenLM(
        build_pattern("delay", K),
        CARD,
        dim=32,
        num_heads=2,
        num_layers=2,
        max_steps=64,
        conditioner=conditioner,
        tie_embeddings=tie,
    )


def _batch(n: int = 8, frames: int = 12):
    """Class a: codes count up, class b: codes count down (a condition worth knowing)."""
    labels = ["a" if i % 2 == 0 else "b" for i in range(n)]
    base = torch.arange(frames)
    rows = [(base if lab == "a" else base.flip(0)) % CARD for lab in labels]
    codes = torch.stack([torch.stack([r] * K) for r in rows])  # (B, K, F)
    return codes, torch.full((n,), frames), [{"class": lab} for lab in labels]


def _ce(lm, codes, frames, infos, null):
    inputs, targets, valid = lm.prepare(codes, frames)
    nll, count = lm.token_nll(lm(inputs, infos, null), targets, valid)
    return nll.sum() / count.sum()


def _train(lm, steps: int = 60) -> None:
    opt = torch.optim.Adam(lm.parameters(), lr=3e-3)
    codes, frames, infos = _batch()
    lm.train()
    for _ in range(steps):
        opt.zero_grad()
        _ce(lm, codes, frames, infos, None).backward()
        opt.step()
    lm.eval()


def test_tied_heads_score_codes_against_their_codebook_table():
    lm = _lm(tie=True)
    lm.eval()
    assert lm.heads is None
    untied = sum(p.numel() for p in _lm().parameters())
    assert untied - sum(p.numel() for p in lm.parameters()) == K * CARD * 32  # no head weights
    inputs = torch.full((2, K, 5), CARD)  # only the special token: no code 3 is read
    with torch.no_grad():
        before = lm.score(inputs)
        lm.embeddings[1].weight[3] += torch.randn(32)  # not a constant: the state is zero-mean
        after = lm.score(inputs)
    changed = (after - before).abs() > 1e-6  # (B, K, S, card)
    assert changed[:, 1, :, 3].all()  # codebook 1's score of code 3 follows its row
    assert changed.sum() == changed[:, 1, :, 3].sum()  # and nothing else moved
    # it learns as the untied LM does
    codes, frames, infos = _batch()
    with torch.no_grad():
        start = float(_ce(lm, codes, frames, infos, None))
    _train(lm)
    with torch.no_grad():
        assert float(_ce(lm, codes, frames, infos, None)) < 0.5 * start


def test_top_k_one_and_greedy_pick_the_most_likely_token():
    logits = torch.randn(5, 7, CARD)
    best = logits.argmax(-1)
    assert torch.equal(sample_next(logits, top_k=1), best)
    assert torch.equal(sample_next(logits, temperature=0.0), best)
    assert torch.equal(sample_next(logits, top_p=1e-6), best)


def test_top_p_keeps_only_the_nucleus():
    probs = torch.tensor([[0.6, 0.3, 0.05, 0.05]])
    gen = torch.Generator().manual_seed(0)
    drawn = {int(sample_next(probs.log(), top_p=0.8, generator=gen)) for _ in range(200)}
    assert drawn == {0, 1}


def test_cfg_dropout_keeps_the_unconditional_path_trained():
    codes, frames, infos = _batch()
    everyone = torch.ones(len(infos), dtype=torch.bool)
    with_dropout, without = _lm(dropout=0.5), _lm(dropout=0.0)
    start_null = with_dropout.conditioner.null.detach().clone()
    with torch.no_grad():
        before = float(_ce(with_dropout, codes, frames, infos, everyone))
    _train(with_dropout)
    _train(without)
    with torch.no_grad():
        after = float(_ce(with_dropout, codes, frames, infos, everyone))
        conditional = float(_ce(with_dropout, codes, frames, infos, ~everyone))
    assert not torch.equal(with_dropout.conditioner.null, start_null)
    # without dropout the null vector never takes part: it keeps its initial value
    assert torch.equal(without.conditioner.null, _lm(dropout=0.0).conditioner.null)
    assert after < 0.8 * before
    # the condition says which sequence it is: knowing it is better than not
    assert conditional < after


def test_generate_is_deterministic_for_a_seed_and_keeps_the_prompt():
    lm = _lm()
    lm.eval()
    codes, _, infos = _batch(4)
    prefix = lm.condition(infos)
    prompt = codes[:, :, :4]

    def sample(seed):
        gen = torch.Generator().manual_seed(seed)
        return lm.generate(10, batch=4, prefix=prefix, prompt=prompt, cfg_scale=2.0, generator=gen)

    first, again, other = sample(1), sample(1), sample(2)
    assert first.shape == (4, K, 10) and int(first.max()) < CARD
    assert torch.equal(first, again)
    assert not torch.equal(first, other)
    assert torch.equal(first[..., :4], prompt)


def _full_pass_generate(lm, frames, batch, prefix, prompt, cfg_scale, generator):
    """Sampling without a cache: every step scores the whole sequence so far."""
    steps = lm.pattern.sequence_length(frames)
    seq = torch.full((batch, K, steps), lm.special)
    pseq = lm.pattern.interleave(prompt, lm.special)
    known = lm.pattern.valid_mask(prompt.shape[-1], pseq.shape[-1]).expand_as(pseq)
    seq[..., : pseq.shape[-1]] = torch.where(known, pseq, seq[..., : pseq.shape[-1]])
    known = torch.nn.functional.pad(known, (0, steps - pseq.shape[-1]))
    wanted = lm.pattern.valid_mask(frames, steps)[0]
    both = torch.cat([prefix, lm.conditioner.null_condition(batch)])
    for step in range(steps):
        if bool(known[..., step].all()):
            continue
        inputs = lm.shift(seq[..., : step + 1])
        logits = lm.score(torch.cat([inputs, inputs]), both)[:, :, -1]
        logits = guided_logits(logits[:batch], logits[batch:], cfg_scale)
        tokens = sample_next(logits, top_k=5, generator=generator)
        tokens = torch.where(wanted[:, step], tokens, torch.full_like(tokens, lm.special))
        seq[..., step] = torch.where(known[..., step], seq[..., step], tokens)
    return lm.pattern.deinterleave(seq)


def test_sampling_with_the_kv_cache_draws_what_a_full_pass_per_step_draws():
    # the cached states are the full pass's: the same logits give the same draws
    for tie in (False, True):
        lm = _lm(tie=tie)
        _train(lm, steps=20)  # weights away from their initial symmetry
        codes, _, infos = _batch(4, frames=20)
        prefix, prompt = lm.condition(infos), codes[:, :, :5]
        with torch.no_grad():
            cached = lm.generate(
                20,
                batch=4,
                prefix=prefix,
                prompt=prompt,
                cfg_scale=3.0,
                top_k=5,
                generator=torch.Generator().manual_seed(7),
            )
            full = _full_pass_generate(
                lm, 20, 4, prefix, prompt, 3.0, torch.Generator().manual_seed(7)
            )
        assert torch.equal(cached, full)
        assert torch.equal(cached[..., :5], prompt)


def test_generate_refuses_more_steps_than_max_steps():
    lm = _lm()
    lm.eval()
    with torch.no_grad(), pytest.raises(ValueError, match="max_steps=64"):
        lm.generate(70, batch=1)


def test_text_conditioner_tells_texts_apart_and_reads_missing_text_as_empty():
    text = TextConditioner("text", 16)
    out = text([["a e i"], [None]][0] + [None])
    assert out.shape == (2, 1, 16)
    assert not torch.allclose(out[0], out[1])
