"""Export an XP's best model as a standalone package (any solver that exports).

  audioflow export SIG -o DIR [--force]

DIR receives model.th (the exported weights, loadable with torch.load(weights_only=True)),
config.yaml (the XP's resolved config) and metadata.json (what the solver declares, e.g. a
codec's contract, the lineage: signature, manifest hashes, code version, the loader, best
and evaluate metrics). Load it back with `audioflow.solvers.exports.load_export(DIR)` (a
codec also with `audioflow.models.load_codec(DIR)` and `audioflow codec`), continue from
it with `continue_from=DIR`, or publish it as //reference/NAME.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

# the lineage written into metadata.json (re-exported: callers import them from here too)
from audioflow.models.lineage import code_version, file_sha256, manifest_hashes  # noqa: F401


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("sig", help="signature of the XP to export")
    parser.add_argument("-o", "--output", required=True, help="package folder to write")
    parser.add_argument("--force", action="store_true", help="replace an existing package")
    parser.add_argument(
        "--config-dir",
        default=None,
        help="user config folder of the XP (its solver module is imported from there)",
    )


def _fail(message: str, code: int = 1) -> int:
    print(f"audioflow export: {message}", file=sys.stderr)
    return code


def _evaluate_metrics(folder: Path) -> dict:
    """The latest evaluate metrics of the XP (from history.json), or {}.

    Raises:
        ConfigError: history.json is not a JSON list (the message names the file).
    """
    from audioflow.config.errors import ConfigError

    path = folder / "history.json"
    if not path.is_file():
        return {}
    # The stages rebuild history.json from their markers (stages/*.json) when they finish.
    fix = "delete it and run a stage of the XP again to rebuild it"
    try:
        history = json.loads(path.read_bytes())
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError
        first = str(exc).strip().splitlines()[0]
        raise ConfigError(f"{path}: not valid JSON ({first}); {fix}") from exc
    if not isinstance(history, list):
        raise ConfigError(f"{path}: not a JSON list of epochs; {fix}")
    for entry in reversed(history):
        if isinstance(entry, dict) and isinstance(entry.get("evaluate"), dict):
            return {"epoch": entry.get("epoch"), **entry["evaluate"]}
    return {}


def export(sig: str, output: str, force: bool = False) -> Path:
    """Write the package of XP ``sig`` to ``output``.

    What is packaged is the solver's :class:`~audioflow.solvers.exports.Export` (its
    ``exports()``, or its registered best modules), loaded with the XP's best state.

    Raises:
        ConfigError: unknown XP, a solver that exports nothing, or a corrupt history.json.
        CheckpointError: the XP has no usable best state yet.
        PackageError: the destination exists (without ``force``).
        OutputError: the destination cannot receive a package.
    """
    from omegaconf import OmegaConf

    from audioflow.config import xp_from_sig
    from audioflow.config.errors import ConfigError
    from audioflow.models.package import check_destination, write_package
    from audioflow.solvers import checkpoint, exports
    from audioflow.solvers.registry import get_solver_class

    # Refused before the XP is read: an unusable -o is known at once and nothing is written.
    check_destination(output, overwrite=force)
    xp = xp_from_sig(sig)
    cfg = xp.cfg
    refusal = exports.export_refusal(str(cfg.get("solver")))
    if refusal:
        raise ConfigError(f"XP {sig}: {refusal}")
    best = checkpoint.load_best(xp)
    try:
        solver = exports.model_only_solver(get_solver_class(str(cfg.solver)), cfg, xp=xp)
        # refuse to package weights that do not fit the config
        exports.load_best_into(solver, best["state"])
        spec = exports.solver_export(solver)
    except exports.ExportError as exc:
        raise ConfigError(f"XP {sig}: {exc}") from None
    metadata = {
        "signature": xp.sig,
        "overrides": list(xp.overrides),
        "solver": str(cfg.solver),
        "exports": list(spec.modules),
        "loader": spec.loader,
        **spec.metadata,
        "lineage": {
            "signature": xp.sig,
            "overrides": list(xp.overrides),
            "manifests": manifest_hashes(OmegaConf.select(cfg, "datasource")),
            "code_version": code_version(),
        },
        "best": {"epoch": best.get("epoch"), "metric": best.get("metric"), "value": best["value"]},
        "metrics": _evaluate_metrics(Path(xp.folder)),
        "manifests": manifest_hashes(OmegaConf.select(cfg, "datasource")),
        "code_version": code_version(),
        "exported_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    return write_package(output, spec.state(), cfg, metadata, overwrite=force)


def main(args) -> int:
    from audioflow.config.errors import ConfigError
    from audioflow.models.package import PackageError
    from audioflow.solvers.checkpoint import CheckpointError

    config_dir = getattr(args, "config_dir", None)
    if config_dir:
        folder = Path(config_dir).resolve()
        if not folder.is_dir():
            return _fail(f"--config-dir {config_dir}: no such folder", 2)
        sys.path.insert(0, str(folder))  # solver classes may live beside their configs
    try:
        folder = export(args.sig, args.output, args.force)
    except ConfigError as exc:
        return _fail(str(exc), getattr(exc, "exit_code", 2))
    except PackageError as exc:
        return _fail(str(exc), exc.exit_code)
    except CheckpointError as exc:
        return _fail(str(exc))
    print(f"exported XP {args.sig} to {folder}")
    return 0
