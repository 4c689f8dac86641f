"""MelStatsClassifier: judges the class whatever the level or a faint noise floor, and only
the class: held-out real clips of every class are told apart, so a sample asked for the
wrong class is not labelled with it."""

from __future__ import annotations

import pytest
import torch

from audioflow.data.synth import CLASSES, synth_clip
from audioflow.metrics.classifier import MelStatsClassifier, augment_level_and_noise

LENGTH = 32000  # 2 s at 16 kHz, as the demo LM's samples


def _clips(seed: int, n: int) -> tuple[torch.Tensor, list[str]]:
    """``n`` synth clips (classes in turn), first 2 s, as (n, 1, LENGTH)."""
    wavs, labels = [], []
    for i in range(n):
        wav, label, _ = synth_clip(seed, i)
        wavs.append(torch.nn.functional.pad(torch.from_numpy(wav), (0, LENGTH))[:LENGTH])
        labels.append(label)
    return torch.stack(wavs)[:, None], labels


@pytest.fixture(scope="module")
def data():
    train, train_labels = _clips(1, 64)
    held, held_labels = _clips(3, 32)
    targets = torch.tensor([CLASSES.index(label) for label in train_labels])
    return train, targets, held, held_labels


def _fit(data, augment: int) -> MelStatsClassifier:
    train, targets, _, _ = data
    classifier = MelStatsClassifier(16000, list(CLASSES))
    assert classifier.fit(train, targets, steps=300, seed=0, augment=augment) > 0.9
    return classifier


def _accuracy(classifier, clips, labels) -> float:
    return sum(p == y for p, y in zip(classifier.predict(clips), labels)) / len(labels)


def test_features_ignore_the_level():
    clips, _ = _clips(5, 4)
    classifier = MelStatsClassifier(16000, list(CLASSES))
    loud, quiet = classifier.features(clips), classifier.features(clips * 10 ** (-35 / 20))
    torch.testing.assert_close(quiet, loud, atol=1e-3, rtol=1e-4)


def test_it_separates_every_class_of_held_out_clips_at_any_level(data):
    classifier = _fit(data, augment=8)
    _, _, held, labels = data
    generator = torch.Generator().manual_seed(7)
    # -40 dB over a noise floor at -70 dBFS: as far from the real clips as codec output is
    faint = augment_level_and_noise(held, generator, (-40.0, -40.0), (-70.0, -70.0))
    for clips in (held, held * 10 ** (-30 / 20), faint):
        predicted = classifier.predict(clips)
        for name in CLASSES:  # every class, not a majority vote for one
            mine = [p for p, y in zip(predicted, labels) if y == name]
            assert sum(p == name for p in mine) / len(mine) >= 0.75, (name, predicted)
        # the class asked for is wrong (the next one): the classifier does not agree
        wrong = [CLASSES[(CLASSES.index(y) + 1) % len(CLASSES)] for y in labels]
        assert _accuracy(classifier, clips, wrong) <= 0.1


def test_augmenting_is_what_makes_a_noise_floor_harmless(data):
    _, _, held, labels = data
    faint = augment_level_and_noise(
        held, torch.Generator().manual_seed(7), (-40.0, -40.0), (-70.0, -70.0)
    )
    plain, augmented = _fit(data, augment=0), _fit(data, augment=8)
    assert _accuracy(augmented, faint, labels) >= _accuracy(plain, faint, labels) + 0.3


def test_fitting_is_deterministic_for_a_seed(data):
    _, _, held, _ = data
    assert _fit(data, augment=2).predict(held) == _fit(data, augment=2).predict(held)
