"""Text <-> token ids for CTC: a character vocabulary, or sentencepiece BPE pieces.

Both are built from the train transcripts and reserve id 0 for the CTC blank and id 1
for the word separator ``|`` (what torchaudio's CTC beam search calls the silence token;
characters map a space to it, BPE never emits it since pieces carry their own ``▁``).
A tokenizer's ``state_dict()`` holds only strings, so it travels in checkpoints loaded
with ``weights_only=True`` and in exported packages.
"""

from __future__ import annotations

import base64
import io
import re
import unicodedata
from collections.abc import Iterable

BLANK = "<blank>"
SEPARATOR = "|"
_NOT_WORD = re.compile(r"[^\w' ]+")


def normalize(text: str) -> str:
    """The form transcripts are trained and scored in: NFKC, lower case, punctuation
    (except apostrophes) as spaces, single spaces."""
    text = unicodedata.normalize("NFKC", text).lower().replace("_", " ")
    return " ".join(_NOT_WORD.sub(" ", text).split())


class CharTokenizer:
    """Characters of the train transcripts (after ``normalize``).

    Args:
        chars: the vocabulary's characters besides blank and separator, in id order.
    """

    kind = "char"

    def __init__(self, chars: Iterable[str]):
        self.tokens = [BLANK, SEPARATOR, *chars]
        self._ids = {c: i for i, c in enumerate(self.tokens)}
        self._ids[" "] = 1

    @classmethod
    def from_texts(cls, texts: Iterable[str]) -> CharTokenizer:
        """The vocabulary of ``texts`` (sorted, so the same texts give the same ids).

        Raises:
            ValueError: the texts hold no character (no transcript at all).
        """
        chars = sorted({c for text in texts for c in normalize(text)} - {" "})
        if not chars:
            raise ValueError("the train transcripts hold no character to build a vocabulary")
        return cls(chars)

    def __len__(self) -> int:
        return len(self.tokens)

    def encode(self, text: str) -> list[int]:
        """Ids of the normalized ``text``; characters out of the vocabulary are dropped."""
        return [self._ids[c] for c in normalize(text) if c in self._ids]

    def decode(self, ids: Iterable[int]) -> str:
        """Text of token ids (blanks dropped; separators are spaces)."""
        chars = [self.tokens[i] for i in ids if 0 < i < len(self.tokens)]
        return " ".join("".join(" " if c == SEPARATOR else c for c in chars).split())

    def state_dict(self) -> dict:
        return {"kind": self.kind, "tokens": list(self.tokens)}

    def load_state_dict(self, state: dict) -> None:
        self.__init__(state["tokens"][2:])


class BpeTokenizer:
    """sentencepiece BPE pieces trained on the train transcripts (after ``normalize``).

    Args:
        model: a serialized sentencepiece model (``ModelProto`` bytes).
    """

    kind = "bpe"

    def __init__(self, model: bytes):
        import sentencepiece as spm

        self.model = bytes(model)
        self.sp = spm.SentencePieceProcessor(model_proto=self.model)
        pieces = [self.sp.id_to_piece(i) for i in range(self.sp.get_piece_size())]
        self.tokens = [BLANK, SEPARATOR, *pieces]

    @classmethod
    def from_texts(cls, texts: Iterable[str], vocab_size: int) -> BpeTokenizer:
        """Train BPE pieces on ``texts``.

        Raises:
            ValueError: sentencepiece refused (e.g. too few texts for ``vocab_size``).
        """
        import sentencepiece as spm

        buffer = io.BytesIO()
        try:
            spm.SentencePieceTrainer.train(
                sentence_iterator=iter([normalize(t) for t in texts]),
                model_writer=buffer,
                model_type="bpe",
                vocab_size=int(vocab_size),
                character_coverage=1.0,
                hard_vocab_limit=False,  # a small corpus may have fewer pieces than asked
                unk_id=0,
                bos_id=-1,
                eos_id=-1,
                pad_id=-1,
                minloglevel=2,
                num_threads=1,  # tiny corpora: threads cost more than they save
            )
        except RuntimeError as err:
            raise ValueError(f"sentencepiece BPE (vocab_size={vocab_size}): {err}") from None
        return cls(buffer.getvalue())

    def __len__(self) -> int:
        return len(self.tokens)

    def encode(self, text: str) -> list[int]:
        return [i + 2 for i in self.sp.encode(normalize(text))]

    def decode(self, ids: Iterable[int]) -> str:
        pieces = [int(i) - 2 for i in ids if 1 < int(i) < len(self.tokens)]
        return " ".join(self.sp.decode(pieces).split())

    def state_dict(self) -> dict:
        return {"kind": self.kind, "model": base64.b64encode(self.model).decode("ascii")}

    def load_state_dict(self, state: dict) -> None:
        self.__init__(base64.b64decode(state["model"]))


def tokenizer_from_state(state: dict) -> CharTokenizer | BpeTokenizer:
    """Rebuild a tokenizer from its ``state_dict()``.

    Raises:
        ValueError: an unknown kind.
    """
    if state.get("kind") == "char":
        return CharTokenizer(state["tokens"][2:])
    if state.get("kind") == "bpe":
        return BpeTokenizer(base64.b64decode(state["model"]))
    raise ValueError(f"tokenizer kind {state.get('kind')!r} is unknown (char or bpe)")


def build_tokenizer(kind: str, texts: list[str], vocab_size: int = 64):
    """A tokenizer of ``kind`` (``char`` or ``bpe``) built from ``texts``.

    Raises:
        ValueError: an unknown kind, or texts that cannot give a vocabulary.
    """
    if kind == "char":
        return CharTokenizer.from_texts(texts)
    if kind == "bpe":
        return BpeTokenizer.from_texts(texts, vocab_size)
    raise ValueError(f"tokenizer={kind!r} is unknown: use char or bpe")
