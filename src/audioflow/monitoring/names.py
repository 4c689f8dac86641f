"""How the loggers read metric names: optimizer keys, throughput, and what is a loss.

The solver core adds ``lr/<opt>`` (``lr/<opt>/<group>`` for several parameter groups) and
``grad_norm/<opt>`` to each update's metrics; TensorBoard adds ``throughput/<what>``. The
monitor, TensorBoard, the progress averages and the XP report all read names through
this module, so each convention is written once. Imports nothing.
"""

from __future__ import annotations

LR = "lr/"
GRAD_NORM = "grad_norm/"
#: The per-update optimizer keys of the solver core.
OPTIM_PREFIXES = (LR, GRAD_NORM)
#: The scalars the loggers compute themselves (updates/s, audio seconds/s, data wait).
THROUGHPUT = "throughput/"
#: Words that make a metric name a loss: what AudioCraft-style solvers, which step their own
#: optimizer, call the values they minimise (cross-entropy, negative log-likelihood, CTC).
LOSS_WORDS = frozenset({"loss", "ce", "nll", "ctc"})


def is_optim_key(name: str) -> bool:
    """Whether ``name`` is one of the solver core's ``lr/`` or ``grad_norm/`` keys."""
    return name.startswith(OPTIM_PREFIXES)


def split_optim_key(name: str) -> tuple[str, str]:
    """``("lr", "gen/encoder")`` for ``lr/gen/encoder``; ``("grad_norm", "main")`` ...

    Raises:
        ValueError: ``name`` is not an optimizer key.
    """
    for prefix in OPTIM_PREFIXES:
        if name.startswith(prefix):
            return prefix[:-1], name[len(prefix) :]
    raise ValueError(f"{name!r} is not an lr/ or grad_norm/ key")


def is_loss_name(name: str) -> bool:
    """Whether a metric name says it is a loss: one of :data:`LOSS_WORDS` between its
    underscores (``gen_loss``, ``ce``, ``ce_q0``, ``ctc_loss``; not ``ppl``, ``sisnr``)."""
    return not LOSS_WORDS.isdisjoint(name.split("_"))
