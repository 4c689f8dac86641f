"""Print where a workflow's results are: XP folders, last metrics, listening pages, references.

Run after `snakemake` (``make demo`` does): ``python -m audioflow.workflow.summary
[--configfile config/workflow.yaml ...] [--config KEY=VALUE ...]``. It reads the same
workflow config as the Snakefile (later files override earlier ones, key by key, as
``--configfile`` does; ``--config`` values, YAML, replace keys as Snakemake's do), so
``--config 'grids=["config/grids/lr_sweep.yaml"]'`` lists that grid's XPs too.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import yaml

from audioflow.config.grids import GridError, apply_config_values, load_workflow_config
from audioflow.config.layout import MARKER_RE, SAMPLES_DIR, STAGES_DIR, marker_path, xp_folder

from .plan import XPPlan, load_plans
from .publication import published_signature


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _format_metrics(metrics: dict | None, limit: int = 5) -> str:
    if not metrics:
        return "-"
    # Per-variant metrics (e.g. `sisnr_q1` per bandwidth) would crowd out the headline ones.
    items = [
        (k, v)
        for k, v in metrics.items()
        if isinstance(v, int | float) and not re.search(r"_q\d+$", k)
    ]
    # headline names first (wer, cer before wer_beam_digits): fewer qualifiers, same order
    items = sorted(items, key=lambda kv: kv[0].count("_"))[:limit]
    return ", ".join(f"{k}={v:.4g}" for k, v in items) or "-"


def describe_xp(plan: XPPlan, folder: Path) -> list[str]:
    """Lines about one XP: its folder, progress, last metrics and listening page.

    Args:
        plan: the XP's plan.
        folder: ``<xp_root>/xps/<sig>``.

    Returns:
        Human-readable lines, without trailing newlines.
    """
    done = [e for e in range(1, plan.epochs + 1) if marker_path(folder, "valid", e).is_file()]
    lines = [f"XP {plan.name} ({plan.sig}): {len(done)}/{plan.epochs} epochs validated"]
    lines.append(f"  folder:    {folder}")
    if done:
        lines.append(
            f"  valid:     {_format_metrics(_read_json(marker_path(folder, 'valid', done[-1])))}"
        )
    evaluated = sorted(
        (int(m.group(2)), path)
        for path in (folder / STAGES_DIR).glob("*.json")
        if (m := MARKER_RE.match(path.name)) and m.group(1) == "evaluate"
    )
    if evaluated:
        epoch, path = evaluated[-1]
        lines.append(f"  evaluate:  {_format_metrics(_read_json(path))} (evaluate_{epoch})")
        lm = describe_lm(_read_json(path), folder)
        if lm:
            lines.append(f"  lm:        {lm}")
    pages = sorted((folder / SAMPLES_DIR).glob("**/*.html"), key=lambda p: p.stat().st_mtime)
    if pages:
        lines.append(f"  listen:    {pages[-1]}")
    lines.append(f"  inspect:   audioflow info {plan.sig}")
    return lines


def describe_lm(evaluate: dict | None, folder: Path) -> str | None:
    """A token LM's held-out cross-entropy beside its baselines, and its conditioning
    accuracy (from the last generate); None for an XP that is not a token LM."""
    if not evaluate or "unigram_ce" not in evaluate:
        return None
    text = (
        f"held-out CE {evaluate['ce']:.3f} nats/token = {evaluate['ce_ratio_unigram']:.2f} x "
        f"unigram ({evaluate['unigram_ce']:.3f}); uniform {evaluate['uniform_ce']:.3f}"
    )
    generated = sorted(
        (int(m.group(2)), path)
        for path in (folder / STAGES_DIR).glob("*.json")
        if (m := MARKER_RE.match(path.name)) and m.group(1) == "generate"
    )
    metrics = _read_json(generated[-1][1]) if generated else None
    if metrics and "cond_acc" in metrics:
        scored = f" of {metrics['cond_samples']:.0f} samples" if "cond_samples" in metrics else ""
        text += (
            f"; conditioning accuracy {metrics['cond_acc']:.0%}{scored} (prompted "
            f"{metrics['cond_acc_prompted']:.0%}; classifier on real clips "
            f"{metrics['classifier_acc_real']:.0%}, on codec reconstructions "
            f"{metrics.get('classifier_acc_codec', float('nan')):.0%}; generate_{generated[-1][0]})"
        )
    return text


def describe_reference(name: str, xp: str, sig: str, folder: Path) -> str:
    """One line on a published reference: does it hold the XP ``publish:`` names?"""
    holds = published_signature(folder)
    if holds is None:
        state = "not published yet"
    elif holds == sig:
        state = "published"
    else:
        state = f"holds XP {holds}; run snakemake to publish {sig}"
    return f"reference {name} (XP {xp}, {sig}): {folder} [{state}]"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m audioflow.workflow.summary", description=__doc__
    )
    parser.add_argument(
        "--configfile",
        type=Path,
        action="append",
        default=None,
        help="workflow config file(s); default: config/workflow.yaml",
    )
    parser.add_argument(
        "--config",
        nargs="+",
        default=[],
        metavar="KEY=VALUE",
        help="workflow config values, as given to snakemake --config",
    )
    args = parser.parse_args(argv)
    from audioflow.config import ConfigError, cluster_config

    paths = args.configfile or [Path("config/workflow.yaml")]
    try:
        config = apply_config_values(load_workflow_config(paths), args.config)
        plans = load_plans(config)
        cluster = cluster_config(config.get("config_dir"))
    except (OSError, ValueError, GridError, ConfigError, yaml.YAMLError) as exc:
        print(f"workflow summary: {exc}", file=sys.stderr)
        return 2
    for plan in plans:
        print("\n".join(describe_xp(plan, xp_folder(cluster["xp_root"], plan.sig))))
    by_name = {plan.name: plan for plan in plans}
    for item in config.get("publish") or []:
        source = by_name.get(item["xp"])
        folder = Path(cluster["reference_dir"]) / item["as"]
        print(describe_reference(item["as"], item["xp"], source.sig if source else "?", folder))
    print("all XPs: audioflow ls")
    return 0


if __name__ == "__main__":
    sys.exit(main())
