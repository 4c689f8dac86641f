"""CTC pieces on toy inputs: the loss of a known alignment, greedy and beam decoding,
the vocabulary round trip, SpecAugment only in training, bucketed batches."""

from __future__ import annotations

import math

import pytest
import torch

from audioflow.data.samplers import BucketBatchSampler
from audioflow.data.tokenizer import BpeTokenizer, CharTokenizer, normalize, tokenizer_from_state
from audioflow.metrics.asr import ErrorCounts, align_words
from audioflow.models.asr import CtcRecognizer, SpecAugment, ctc_loss
from audioflow.models.asr_decoding import BeamSearch, greedy_decode


def _peaked(path: list[int], vocab: int, p: float = 0.9) -> torch.Tensor:
    """(1, F, V) log-probs putting probability p on path[f] at frame f."""
    probs = torch.full((len(path), vocab), (1 - p) / (vocab - 1))
    probs[torch.arange(len(path)), torch.tensor(path)] = p
    return probs.log()[None]


def test_ctc_loss_of_a_single_alignment_is_its_log_probability():
    # two frames, target [1]: the alignments are (1,1), (0,1), (1,0) -> exact sum
    p = torch.tensor([[0.5, 0.3, 0.2], [0.1, 0.6, 0.3]])
    log_probs = p.log()[None]
    loss = ctc_loss(log_probs, torch.tensor([2]), [[1]])
    expected = -math.log(0.3 * 0.6 + 0.5 * 0.6 + 0.3 * 0.1)
    assert float(loss) == pytest.approx(expected, rel=1e-5)  # divided by 1 target token
    # an impossible target (longer than the frames) counts zero, not infinity
    assert float(ctc_loss(log_probs, torch.tensor([2]), [[1, 2, 1]])) == 0.0


def test_greedy_decode_merges_repeats_and_drops_blanks():
    # frames: a a blank a b b blank -> "a a b" (a blank separates the two a's)
    log_probs = _peaked([2, 2, 0, 2, 3, 3, 0], 4)
    assert greedy_decode(log_probs, torch.tensor([7])) == [[2, 2, 3]]
    # only the valid frames count
    assert greedy_decode(log_probs, torch.tensor([3])) == [[2]]


def test_beam_search_agrees_with_greedy_on_a_confident_path():
    tok = CharTokenizer.from_texts(["ab ba"])
    path = [tok.encode("a")[0], 0, 1, tok.encode("b")[0], tok.encode("b")[0]]
    log_probs = _peaked(path, len(tok), 0.95)
    frames = torch.tensor([len(path)])
    (beam,) = BeamSearch(tok.tokens, beam_size=4)(log_probs, frames)
    assert tok.decode(beam) == tok.decode(greedy_decode(log_probs, frames)[0]) == "a b"


def test_char_vocabulary_round_trip():
    texts = ["Zero ONE, two!", "it's   three"]
    tok = CharTokenizer.from_texts(texts)
    assert tok.tokens[:2] == ["<blank>", "|"]
    for text in texts:
        assert tok.decode(tok.encode(text)) == normalize(text)
    assert normalize("Zero ONE, two!") == "zero one two"
    again = tokenizer_from_state(tok.state_dict())
    assert again.tokens == tok.tokens and again.encode("three") == tok.encode("three")
    assert "q" not in tok.tokens and tok.decode(tok.encode("q one")) == "one"


def test_bpe_vocabulary_round_trip():
    texts = [f"{a} {b} {c}" for a in ("one", "two", "three") for b in ("four", "five")
             for c in ("six", "seven", "eight")] * 4  # fmt: skip
    tok = BpeTokenizer.from_texts(texts, vocab_size=30)
    assert len(tok) > 4 and min(tok.encode("one four six")) >= 2  # blank/separator reserved
    for text in texts[:5]:
        assert tok.decode(tok.encode(text)) == text
    again = tokenizer_from_state(tok.state_dict())
    assert again.encode("three five eight") == tok.encode("three five eight")


def test_specaugment_masks_only_in_training():
    torch.manual_seed(0)
    aug = SpecAugment(freq_masks=2, freq_width=8, time_masks=2, time_width=10)
    feats = torch.randn(3, 50, 32) + 5.0
    aug.train()
    assert (aug(feats) == 0).any()
    aug.eval()
    assert torch.equal(aug(feats), feats)


def test_recognizer_output_frames_follow_the_lengths():
    model = CtcRecognizer(10, dim=32, layers=1, heads=2, ffn_dim=32, n_mels=20).eval()
    wav = torch.randn(2, 16000)
    out = model(wav, torch.tensor([16000, 8000]))
    # 10 ms frames (+1, centered) then two stride-2 convolutions
    assert out.log_probs.shape == (2, 26, 10)
    assert out.frames.tolist() == [26, 13]
    assert torch.allclose(out.log_probs.exp().sum(-1), torch.ones(2, 26), atol=1e-5)


def test_error_counts_are_corpus_level():
    counts = ErrorCounts()
    counts.add(["one two three four", "five"], ["one two three four", "six"])
    assert counts.wer == pytest.approx(1 / 5)  # not the mean of 0 and 1
    counts.add(["seven"], [""])
    assert counts.word_errors == 2 and counts.words == 6
    ops = [op for op, _, _ in align_words("one two three", "one too three four")]
    assert ops == ["equal", "substitute", "equal", "insert"]


def test_bucketed_batches_pad_less_and_cover_the_epoch():
    durations = [float(d) for d in torch.rand(200, generator=torch.Generator().manual_seed(0))]

    def padding(bucketing: bool) -> float:
        sampler = BucketBatchSampler(durations, 8, 25, bucketing=bucketing, seed=1)
        batches = [[i for _, i in batch] for batch in sampler]
        assert len(batches) == 25 and all(len(b) == 8 for b in batches)
        assert len({i for b in batches for i in b}) == 200  # one pass: every item once
        return sum(max(durations[i] for i in b) * 8 - sum(durations[i] for i in b)
                   for b in batches)  # fmt: skip

    assert padding(True) < 0.25 * padding(False)


def test_bucket_sampler_resumes_and_splits_over_ranks():
    durations = [float(i % 17) for i in range(90)]
    full = list(BucketBatchSampler(durations, 4, 12, seed=3))
    resumed = BucketBatchSampler(durations, 4, 12, seed=3)
    resumed.set_start(5)
    assert list(resumed) == full[5:]
    ranks = [list(BucketBatchSampler(durations, 2, 10, 2, r, seed=3)) for r in range(2)]
    seen = [i for rank in ranks for batch in rank for _, i in batch]
    assert len(seen) == len(set(seen))  # ranks never share an utterance within a pass
    evaluate = [BucketBatchSampler(durations, 4, None, 2, r, shuffle=False) for r in range(2)]
    items = sorted(i for s in evaluate for batch in s for _, i in batch)
    assert items == list(range(90))  # valid/evaluate: every utterance exactly once
