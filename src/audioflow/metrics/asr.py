"""Word and character error rates (jiwer) and the word alignment of one hypothesis.

Rates are corpus-level: total edits over total reference words (characters), not a mean
of per-utterance rates, so long utterances weigh what they hold. ``ErrorCounts`` sums
what ranks and batches saw before dividing.
"""

from __future__ import annotations

from dataclasses import dataclass

import jiwer


@dataclass
class ErrorCounts:
    """Edit counts of a set of utterances (summable over batches and ranks)."""

    word_errors: int = 0
    words: int = 0
    char_errors: int = 0
    chars: int = 0
    utterances: int = 0

    def add(self, references: list[str], hypotheses: list[str]) -> None:
        """Count the edits of ``hypotheses`` against ``references`` (normalized texts)."""
        for ref, hyp in zip(references, hypotheses):
            self.words += len(ref.split())
            self.chars += len(ref)
            self.utterances += 1
            if ref == hyp:
                continue
            if not ref:  # jiwer refuses an empty reference: every hypothesis word is an error
                self.word_errors += len(hyp.split())
                self.char_errors += len(hyp)
                continue
            words = jiwer.process_words(ref, hyp if hyp else "")
            self.word_errors += words.substitutions + words.deletions + words.insertions
            chars = jiwer.process_characters(ref, hyp if hyp else "")
            self.char_errors += chars.substitutions + chars.deletions + chars.insertions

    def as_list(self) -> list[int]:
        return [self.word_errors, self.words, self.char_errors, self.chars, self.utterances]

    @classmethod
    def from_list(cls, values) -> ErrorCounts:
        return cls(*[int(v) for v in values])

    @property
    def wer(self) -> float:
        """Word error rate in [0, inf) (insertions can exceed the reference)."""
        return self.word_errors / max(self.words, 1)

    @property
    def cer(self) -> float:
        """Character error rate (spaces count as characters)."""
        return self.char_errors / max(self.chars, 1)


def align_words(reference: str, hypothesis: str) -> list[tuple[str, str, str]]:
    """The word alignment of a hypothesis: ``(op, reference words, hypothesis words)``
    chunks, ``op`` one of ``equal``, ``substitute``, ``delete``, ``insert``."""
    ref, hyp = reference.split(), hypothesis.split()
    if not ref:
        return [("insert", "", " ".join(hyp))] if hyp else []
    out = jiwer.process_words(reference, hypothesis if hyp else "")
    return [
        (
            chunk.type,
            " ".join(ref[chunk.ref_start_idx : chunk.ref_end_idx]),
            " ".join(hyp[chunk.hyp_start_idx : chunk.hyp_end_idx]),
        )
        for chunk in out.alignments[0]
    ]
