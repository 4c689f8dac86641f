"""CTC decoding: greedy (best path) and beam search (torchaudio's lexicon-free CTC decoder,
from flashlight-text), both returning token ids without blanks or repeats."""

from __future__ import annotations

import torch


def greedy_decode(log_probs: torch.Tensor, frames: torch.Tensor, blank: int = 0) -> list[list[int]]:
    """Best-path decoding: the likeliest class per frame, repeats merged, blanks dropped.

    Args:
        log_probs: (B, F, V).
        frames: (B,) valid frames.
        blank: the blank id.

    Returns:
        Token ids per utterance.
    """
    best = log_probs.argmax(-1).cpu()  # (B, F)
    out = []
    for row, n in zip(best, frames.tolist()):
        ids = torch.unique_consecutive(row[:n]).tolist()
        out.append([i for i in ids if i != blank])
    return out


class BeamSearch:
    """Lexicon-free CTC prefix beam search, no language model.

    Args:
        tokens: the token strings in id order; ``tokens[0]`` is the blank and
            ``tokens[1]`` the word separator.
        beam_size: hypotheses kept per frame.

    Raises:
        RuntimeError: flashlight-text (torchaudio's decoder backend) is not installed.
    """

    def __init__(self, tokens: list[str], beam_size: int = 8):
        from torchaudio.models.decoder import ctc_decoder

        # flashlight wants unique token strings; ids are what comes back
        names = [f"{i}:{t}" for i, t in enumerate(tokens)]
        self.decoder = ctc_decoder(
            lexicon=None,
            tokens=names,
            beam_size=int(beam_size),
            blank_token=names[0],
            sil_token=names[1],
            lm=None,
        )
        self.separator = 1

    def __call__(self, log_probs: torch.Tensor, frames: torch.Tensor) -> list[list[int]]:
        """(B, F, V), (B,) -> token ids per utterance (separators kept inside words' gaps)."""
        hyps = self.decoder(log_probs.detach().float().cpu().contiguous(), frames.cpu().int())
        out = []
        for nbest in hyps:
            ids = nbest[0].tokens.tolist() if nbest else []
            # the decoder opens and closes each hypothesis with the separator
            while ids and ids[0] == self.separator:
                ids.pop(0)
            while ids and ids[-1] == self.separator:
                ids.pop()
            out.append(ids)
        return out
