"""Resolve declared XPs to signatures and stage epochs, with an on-disk cache.

Composing an XP costs tens of milliseconds, so a workflow of hundreds of XPs would spend
seconds on every `snakemake` call. The plan of each XP (signature, epochs, stage periods,
manifests) depends only on its overrides and on the config files and signing code, so it
is cached in ``.snakemake/audioflow/plans.json`` under a fingerprint of those files and
recomputed only for XPs whose overrides are new or when a fingerprinted file changed.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from audioflow import atomic
from audioflow.config.layout import STAGES

from .epochs import chunk_ends, every_epochs
from audioflow.config.grids import XPSpec, xp_specs

# Where a workflow run keeps its plans (beside Snakemake's own state).
PLAN_CACHE = Path(".snakemake/audioflow/plans.json")

CACHE_VERSION = 1


@dataclass(frozen=True)
class XPPlan:
    """What the workflow runs for one XP.

    Args:
        name: the XP's name in the workflow config.
        sig: its signature (8 hex characters).
        overrides: the overrides passed to ``audioflow run``.
        epochs: total training epochs (``optim.epochs``).
        evaluate_every: ``evaluate.every`` (0: last epoch only).
        generate_every: ``generate.every`` (0: last epoch only).
        manifests: local manifest files its datasource reads (workflow inputs).
    """

    name: str
    sig: str
    overrides: tuple[str, ...]
    epochs: int
    evaluate_every: int
    generate_every: int
    manifests: tuple[str, ...]

    def stage_epochs(self, stage: str, per_job: int = 1) -> list[int]:
        """Epochs at which ``stage`` has a job (train: chunk ends)."""
        if stage == "train":
            return chunk_ends(self.epochs, per_job)
        if stage == "valid":
            return list(range(1, self.epochs + 1))
        if stage == "evaluate":
            return every_epochs(self.epochs, self.evaluate_every)
        if stage == "generate":
            return every_epochs(self.epochs, self.generate_every)
        raise ValueError(f"unknown stage {stage!r}: choose one of {', '.join(STAGES)}")


# The facts a resolver returns for one override list (all JSON-serialisable).
Facts = dict
Resolver = Callable[[Sequence[Sequence[str]], "str | None"], list[Facts]]


def resolve_with_config(overrides_list: Sequence[Sequence[str]], config_dir: str | None) -> list:
    """Sign each override list with :func:`audioflow.config.signatures` (the one signature
    function) and read its stage epochs and manifests from the composed config.

    The config folders are scanned once and Hydra composes once per distinct set of group
    choices.

    Returns:
        One dict per list: sig, epochs, evaluate_every, generate_every, manifests.

    Raises:
        ConfigError: an override list does not compose (the message names the key).
    """
    from omegaconf import OmegaConf

    from audioflow.config import signatures
    from audioflow.config.composition import compose_parts, fingerprint, search_dirs

    sigs = signatures(overrides_list, config_dir)
    dirs = search_dirs(config_dir)
    stamp = fingerprint(dirs)
    facts = []
    for sig, overrides in zip(sigs, overrides_list):
        cfg = compose_parts(list(overrides), dirs=dirs, stamp=stamp).cfg
        datasource = OmegaConf.to_container(cfg.get("datasource") or {}, resolve=True)
        # //reference/... paths are not built by this workflow.
        manifests = sorted(
            {str(p) for p in datasource.values() if isinstance(p, str) and not p.startswith("//")}
        )
        facts.append(
            {
                "sig": sig,
                "epochs": int(cfg.optim.epochs),
                "evaluate_every": int(cfg.evaluate.every),
                "generate_every": int(cfg.generate.every),
                "manifests": manifests,
            }
        )
    return facts


def content_digest(paths: Sequence[Path]) -> str:
    """sha1 over the names and contents of every ``*.yaml``/``*.py`` file under ``paths``."""
    digest = hashlib.sha1(str(CACHE_VERSION).encode())
    for root in paths:
        root = Path(root)
        files = sorted(root.rglob("*.yaml")) + sorted(root.rglob("*.py")) if root.is_dir() else []
        for file in files:
            digest.update(str(file.relative_to(root)).encode())
            digest.update(file.read_bytes())
    return digest.hexdigest()


def _key(overrides: Sequence[str], config_dir: str | None) -> str:
    return json.dumps([config_dir, list(overrides)])


def resolve_plans(
    specs: Sequence[XPSpec],
    *,
    config_dir: str | None = None,
    cache_file: Path | None = None,
    watched: Sequence[Path] = (),
    resolver: Resolver = resolve_with_config,
) -> list[XPPlan]:
    """Resolve every XP, reusing cached results whose inputs did not change.

    Args:
        specs: the declared XPs.
        config_dir: user config folder searched before the built-in one.
        cache_file: JSON cache; None disables caching.
        watched: folders whose YAML/Python files invalidate the cache when they change.
        resolver: turns override lists into facts (see :func:`resolve_with_config`).

    Returns:
        One plan per spec, in order; duplicated signatures are kept (the caller decides).
    """
    stamp = content_digest([*watched, *([Path(config_dir)] if config_dir else [])])
    cached: dict = {}
    if cache_file is not None and cache_file.is_file():
        try:
            data = json.loads(cache_file.read_text())
            if data.get("fingerprint") == stamp:
                cached = data["plans"]
        except (ValueError, KeyError, TypeError):
            cached = {}  # a damaged cache is only a slower start
    missing = [s for s in specs if _key(s.overrides, config_dir) not in cached]
    if missing:
        for spec, facts in zip(missing, resolver([s.overrides for s in missing], config_dir)):
            cached[_key(spec.overrides, config_dir)] = facts
        if cache_file is not None:
            atomic.write_text(cache_file, json.dumps({"fingerprint": stamp, "plans": cached}))
    plans = []
    for spec in specs:
        facts = cached[_key(spec.overrides, config_dir)]
        plans.append(
            XPPlan(
                name=spec.name,
                sig=facts["sig"],
                overrides=spec.overrides,
                epochs=facts["epochs"],
                evaluate_every=facts["evaluate_every"],
                generate_every=facts["generate_every"],
                manifests=tuple(facts["manifests"]),
            )
        )
    return plans


def by_signature(plans: Sequence[XPPlan]) -> dict[str, XPPlan]:
    """Index plans by signature; two names for one signature share its jobs (first wins)."""
    index: dict[str, XPPlan] = {}
    for plan in plans:
        index.setdefault(plan.sig, plan)
    return index


def load_plans(config: dict, cache_file: Path | None = PLAN_CACHE) -> list[XPPlan]:
    """The plans of every XP a workflow config declares (``xps`` and ``grids``, relative to
    the working directory), through the plan cache: what the Snakefile and the workflow
    summary both plan with.

    Args:
        config: the workflow config (``xps``, ``grids``, ``config_dir``).
        cache_file: the plan cache (None: no cache).

    Raises:
        GridError: a bad XP list or grid file.
        ConfigError: an XP's overrides do not compose.
    """
    package_root = Path(__file__).resolve().parents[1]
    specs = xp_specs(config.get("xps") or [], config.get("grids") or [], Path.cwd())
    return resolve_plans(
        specs,
        config_dir=config.get("config_dir"),
        cache_file=cache_file,
        # The signing code and the shipped config groups decide every plan.
        watched=[package_root.parents[1] / "config", package_root / "config"],
    )
