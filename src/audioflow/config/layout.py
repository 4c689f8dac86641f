"""The XP folder layout: every name under ``<xp_root>/``, spelled once.

An XP lives in ``<xp_root>/xps/<sig>/``; the workflow's rule logs in
``<xp_root>/logs/xps/<sig>/``. Solvers, the CLI, workflow planning, the launchers and the
Snakemake rules import these names instead of spelling them. This module imports nothing
heavy (no torch), so planning stays cheap.

```
<xp_root>/xps/<sig>/
  overrides.json config_dir.json delta.json config.yaml drift.json .config.lock
                                                                  the XP's definition
  locks/<stage>.lock                                              held while a stage runs
  checkpoint.th checkpoint_<E>.th best.th best.json history.json   training state and results
  .history.lock                                                   held while history.json is rebuilt
  stages/<stage>_<E>.json                                         a finished stage's metrics
  solver.log solver.<rank>.log tensorboard/ samples/              what a person reads
  updates.jsonl timings.jsonl report/
<xp_root>/logs/xps/<sig>/stages/<stage>_<E>.log                   the workflow's rule logs
```
"""

from __future__ import annotations

import re
from pathlib import Path

#: The epoch stages, in the order an epoch runs them.
STAGES = ("train", "valid", "evaluate", "generate")

#: An XP signature: 8 lowercase hex characters (as Dora's).
SIG_PATTERN = r"[0-9a-f]{8}"
SIG_RE = re.compile(rf"^{SIG_PATTERN}$")

XPS_DIR = "xps"
LOGS_DIR = "logs"

# The XP's definition (written by config.folder).
CONFIG_FILE = "config.yaml"
OVERRIDES_FILE = "overrides.json"
CONFIG_DIR_FILE = "config_dir.json"  # {"config_dir": the user config folder or null}
DELTA_FILE = "delta.json"
DRIFT_FILE = "drift.json"
MUTEX_FILE = ".config.lock"
LOCKS_DIR = "locks"

# Training state and results (written by the solver).
LATEST_CHECKPOINT = "checkpoint.th"
BEST_CHECKPOINT = "best.th"
BEST_FILE = "best.json"
HISTORY_FILE = "history.json"
HISTORY_LOCK = ".history.lock"  # serialises the rebuilds of history.json by the stages
STAGES_DIR = "stages"
TENSORBOARD_DIR = "tensorboard"
SAMPLES_DIR = "samples"
UPDATES_FILE = "updates.jsonl"  # per-update train scalars at the logging cadence
TIMINGS_FILE = "timings.jsonl"  # one line per stage run: stage, epoch, start, seconds, outcome
REPORT_DIR = "report"  # `audioflow report`: index.html and its PNG charts

MARKER_RE = re.compile(rf"^({'|'.join(STAGES)})_(\d+)\.json$")
EPOCH_CHECKPOINT_RE = re.compile(r"^checkpoint_(\d+)\.th$")


def is_signature(text: str) -> bool:
    """Whether ``text`` has the form of a signature (not whether that XP exists)."""
    return bool(SIG_RE.match(str(text)))


def xps_dir(xp_root: Path | str) -> Path:
    """``<xp_root>/xps``: the folder that holds every XP."""
    return Path(xp_root) / XPS_DIR


def xp_folder(xp_root: Path | str, sig: str) -> Path:
    """``<xp_root>/xps/<sig>``."""
    return xps_dir(xp_root) / sig


def marker_name(stage: str, epoch: int | str) -> str:
    """``<stage>_<epoch>.json``, the file name of a stage marker."""
    return f"{stage}_{epoch}.json"


def marker_path(folder: Path | str, stage: str, epoch: int | str) -> Path:
    """``<folder>/stages/<stage>_<epoch>.json``: present once that stage finished."""
    return Path(folder) / STAGES_DIR / marker_name(stage, epoch)


def epoch_checkpoint_name(epoch: int | str) -> str:
    """``checkpoint_<epoch>.th``: the state at the end of an epoch's training."""
    return f"checkpoint_{epoch}.th"


def lock_path(folder: Path | str, name: str) -> Path:
    """``<folder>/locks/<name>.lock``: held (flock) while the stage ``name`` runs."""
    return Path(folder) / LOCKS_DIR / f"{name}.lock"


def stage_logs_dir(xp_root: Path | str) -> Path:
    """``<xp_root>/logs/xps``: the workflow's per-XP rule logs."""
    return Path(xp_root) / LOGS_DIR / XPS_DIR


def stage_log_path(xp_root: Path | str, sig: str, stage: str, epoch: int | str) -> Path:
    """``<xp_root>/logs/xps/<sig>/stages/<stage>_<epoch>.log``."""
    return stage_logs_dir(xp_root) / sig / STAGES_DIR / f"{stage}_{epoch}.log"


#: The listening page the generate stage writes in each ``<generate.path>/epoch_<E>/``.
SAMPLES_PAGE = "index.html"
_SAMPLES_EPOCH_RE = re.compile(r"^epoch_(\d+)$")


def samples_dir(folder: Path | str, samples: str, epoch: int | str) -> Path:
    """``<folder>/<samples>/epoch_<E>``: where generate E writes (``samples``: generate.path)."""
    return Path(folder) / samples / f"epoch_{epoch}"


def samples_page(folder: Path | str, samples: str, epoch: int | str) -> Path:
    """``<folder>/<samples>/epoch_<E>/index.html``: the listening page of generate E."""
    return samples_dir(folder, samples, epoch) / SAMPLES_PAGE


def samples_pages(folder: Path | str, samples: str) -> list[tuple[int, Path]]:
    """(epoch, page) of every generate epoch's listening page that exists, by epoch."""
    pages = []
    for page in (Path(folder) / samples).glob(f"epoch_*/{SAMPLES_PAGE}"):
        match = _SAMPLES_EPOCH_RE.match(page.parent.name)
        if match:
            pages.append((int(match.group(1)), page))
    return sorted(pages)


def solver_log_name(rank: int = 0) -> str:
    """``solver.log`` for rank 0, ``solver.<rank>.log`` for the others."""
    return "solver.log" if rank == 0 else f"solver.{rank}.log"
