"""Builders: turn ``optim_sches`` / ``optim`` config into the optimizer protocol and optimizers.

The only code in audioflow.optim that reads config objects; everything it builds takes plain
arguments. Every mistake is reported at build time as one OptimConfigError line naming the
key and listing the valid choices.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Iterable, Mapping

import torch
from torch import nn

from .errors import OptimConfigError
from .managed import ManagedOptimizer, managed
from .protocol import PRECISIONS, OptimProtocol
from .scheduler import OptimScheduler, unwrap_model

# `type:` values resolvable without a full dotted path (module.Class inside audioflow.optim).
BUILTIN_TYPES = (
    "constant.ConstantLr",
    "exp.ExponentDecayLr",
    "inverse_sqrt.InverseSqrtLr",
    "noam.NoamLr",
    "warmup.WarmupCosineLr",
)
# Keys the solver decides for every OptimScheduler at once.
SOLVER_LEVEL_KEYS = {
    "model": "it is the solver's model",
    "distributed": "it follows the launch",
    "accum_grad": "set optim.accum_grad",
    "use_amp": "set optim.precision",
    "ft_factor": "set optim.ft_factor",
    "name": "it is the key under optim_sches",
}
OPTIMIZERS = ("adam", "adamw", "sgd")


def _plain(cfg) -> object:
    """A DictConfig/ListConfig as plain containers (interpolations resolved); others as is."""
    try:
        from omegaconf import DictConfig, ListConfig, OmegaConf
    except ImportError:  # pragma: no cover - omegaconf is a dependency
        return cfg
    if isinstance(cfg, DictConfig | ListConfig):
        return OmegaConf.to_container(cfg, resolve=True)
    return cfg


def resolve_type(type_name: str, where: str) -> type[OptimScheduler]:
    """``module.Class`` inside audioflow.optim, or a full dotted path to a user class.

    Raises:
        OptimConfigError: nothing importable there, or not an OptimScheduler subclass.
    """
    choices = f"built-in types: {', '.join(BUILTIN_TYPES)} (or a full dotted path)"
    if not isinstance(type_name, str) or "." not in type_name:
        raise OptimConfigError(f"{where}={type_name!r} is not module.Class; {choices}")
    module_name, _, class_name = type_name.rpartition(".")
    cls = None
    for candidate in (f"audioflow.optim.{module_name}", module_name):
        try:
            module = importlib.import_module(candidate)
        except ModuleNotFoundError as exc:
            # Only "this module does not exist" means try the next; a broken user module
            # (its own missing import) must surface as it is.
            if exc.name is None or not candidate.startswith(exc.name):
                raise
            continue
        cls = getattr(module, class_name, None)
        if cls is not None:
            break
    if cls is None:
        raise OptimConfigError(f"{where}={type_name!r} is unknown; {choices}")
    if not (isinstance(cls, type) and issubclass(cls, OptimScheduler)):
        raise OptimConfigError(f"{where}={type_name!r} is not an OptimScheduler subclass")
    return cls


def _check_claims(cfg: Mapping[str, Mapping]) -> None:
    """Two OptimSchedulers may not update the same module (checked before building)."""
    claims: dict[str, str] = {}
    for name, entry in cfg.items():
        modules = (entry.get("conf") or {}).get("updated_modules")
        modules = [modules] if isinstance(modules, str) else list(modules or ["<whole model>"])
        for module in modules:
            if module == "<whole model>" and len(cfg) > 1:
                others = ", ".join(n for n in cfg if n != name)
                raise OptimConfigError(
                    f"optim_sches.{name} has no updated_modules (the whole model) but {others} "
                    "also train it; give each OptimScheduler its updated_modules"
                )
            other = claims.setdefault(module, name)
            if other != name:
                raise OptimConfigError(
                    f"optim_sches.{other} and optim_sches.{name} both claim module {module!r}; "
                    "each module belongs to one OptimScheduler"
                )


def build_optim_sches(
    optim_sches_cfg: Mapping,
    model: nn.Module,
    *,
    distributed: bool,
    accum_grad: int = 1,
    precision: str = "fp32",
    ft_factor: float = 1.0,
    use_amp: bool = False,
) -> OptimProtocol:
    """Build the named OptimSchedulers of ``cfg.optim_sches`` as one protocol.

    Args:
        optim_sches_cfg: ``{name: {type: module.Class, conf: {...}}}`` (DictConfig or dict).
        model: the model to train (DDP-wrapped or not; modules are looked up inside).
        distributed: whether the model runs under DDP.
        accum_grad: micro-batches per update (``optim.accum_grad``).
        precision: ``fp32``, ``bf16`` or ``fp16`` (``optim.precision``).
        ft_factor: LR multiplier for every schedule (``optim.ft_factor``).
        use_amp: SpeeChain's legacy flag; True with precision ``fp32`` means ``fp16``.

    Returns:
        The OptimProtocol the solver drives.

    Raises:
        OptimConfigError: any invalid type, key, value, module or module claimed twice.
    """
    cfg = _plain(optim_sches_cfg)
    if not isinstance(cfg, Mapping) or not cfg:
        raise OptimConfigError(
            "optim_sches must map names to {type: module.Class, conf: {...}}; "
            f"got {cfg!r} (see docs/optim.md)"
        )
    if use_amp and precision == "fp32":
        precision = "fp16"
    if precision not in PRECISIONS:
        raise OptimConfigError(
            f"optim.precision={precision!r} is unknown; choose one of: {', '.join(PRECISIONS)}"
        )
    for name, entry in cfg.items():
        if not isinstance(entry, Mapping):
            raise OptimConfigError(f"optim_sches.{name} must be a mapping with type and conf")
        extra = sorted(set(entry) - {"type", "conf"})
        if extra:
            raise OptimConfigError(
                f"optim_sches.{name}.{extra[0]} is unknown; an entry has only: type, conf"
            )
        conf = entry.get("conf") or {}
        if not isinstance(conf, Mapping):
            raise OptimConfigError(f"optim_sches.{name}.conf must be a mapping")
        for key in conf:
            if key in SOLVER_LEVEL_KEYS:
                raise OptimConfigError(
                    f"optim_sches.{name}.conf.{key} cannot be set per OptimScheduler: "
                    f"{SOLVER_LEVEL_KEYS[key]}"
                )
        if "optim_type" not in conf:
            raise OptimConfigError(
                f"optim_sches.{name}.conf.optim_type is required (a torch.optim class, e.g. AdamW)"
            )
    _check_claims(cfg)

    sches = {}
    for name, entry in cfg.items():
        cls = resolve_type(entry.get("type"), f"optim_sches.{name}.type")
        sches[name] = cls(
            model=model,
            distributed=distributed,
            accum_grad=accum_grad,
            use_amp=precision == "fp16",
            ft_factor=ft_factor,
            name=name,
            **dict(entry.get("conf") or {}),
        )
    return OptimProtocol(
        sches, model, accum_grad=accum_grad, precision=precision, ft_factor=ft_factor
    )


def build_protocol(optim_cfg: Mapping, device_type: str) -> OptimProtocol:
    """The protocol of an AudioCraft-style solver, from ``cfg.optim``.

    Its managed optimizers (built by :func:`build_optimizer`) are adopted by the solver.

    Args:
        optim_cfg: ``accum_grad``, ``precision``, ``ft_factor``, ``max_norm``.
        device_type: ``cpu`` or ``cuda`` (autocast and the GradScaler).

    Raises:
        OptimConfigError: a bad value of one of those keys.
    """
    cfg = _plain(optim_cfg)
    max_norm = cfg.get("max_norm") or 0.0
    if isinstance(max_norm, bool) or not isinstance(max_norm, int | float) or max_norm < 0:
        raise OptimConfigError(f"optim.max_norm={max_norm!r}: must be a number >= 0")
    return OptimProtocol(
        accum_grad=cfg.get("accum_grad", 1),
        precision=str(cfg.get("precision", "fp32")),
        ft_factor=cfg.get("ft_factor", 1.0),
        max_norm=float(max_norm),
        device_type=device_type,
    )


def build_optimizer(params: Iterable, optim_cfg: Mapping) -> torch.optim.Optimizer:
    """AudioCraft-style optimizer from ``cfg.optim``, managed by the optimizer protocol.

    The result is a subclass instance of the torch class (see managed.py): its ``step()``,
    called in ``run_step``, is the protocol's update once the solver adopted it.

    Args:
        params: parameters (or param groups) to optimize; a module is accepted too.
        optim_cfg: ``optimizer`` (adam | adamw | sgd), ``lr``, ``adam.{betas, weight_decay,
            eps}`` for adam/adamw, optional ``sgd.{momentum, weight_decay, nesterov}``.

    Returns:
        The managed torch optimizer.

    Raises:
        OptimConfigError: unknown optimizer name or a missing/invalid ``lr``.
    """
    cfg = _plain(optim_cfg)
    if isinstance(params, nn.Module):
        params = unwrap_model(params).parameters()
    name = str(cfg.get("optimizer", "")).lower()
    if name not in OPTIMIZERS:
        raise OptimConfigError(
            f"optim.optimizer={cfg.get('optimizer')!r} is unknown; choose one of: "
            f"{', '.join(OPTIMIZERS)}"
        )
    lr = cfg.get("lr")
    if isinstance(lr, bool) or not isinstance(lr, int | float) or not 0 < lr < math.inf:
        raise OptimConfigError(f"optim.lr={lr!r}: must be a finite number > 0")
    if name == "sgd":
        sgd = dict(cfg.get("sgd") or {})
        return managed(torch.optim.SGD)(
            params,
            lr=lr,
            momentum=float(sgd.get("momentum", 0.0)),
            weight_decay=float(sgd.get("weight_decay", 0.0)),
            nesterov=bool(sgd.get("nesterov", False)),
        )
    adam = dict(cfg.get("adam") or {})
    unknown = sorted(set(adam) - {"betas", "weight_decay", "eps"})
    if unknown:
        raise OptimConfigError(
            f"optim.adam.{unknown[0]} is unknown; valid keys: betas, weight_decay, eps"
        )
    cls = torch.optim.Adam if name == "adam" else torch.optim.AdamW
    kwargs = {"lr": lr}
    if "betas" in adam:
        kwargs["betas"] = tuple(float(b) for b in adam["betas"])
    if "weight_decay" in adam:
        kwargs["weight_decay"] = float(adam["weight_decay"])
    if "eps" in adam:
        kwargs["eps"] = float(adam["eps"])
    return managed(cls)(params, **kwargs)


def adopt_optimizers(protocol: OptimProtocol, attributes: Mapping, accum_grad: int) -> list[str]:
    """Hand every managed optimizer among a solver's attributes to its protocol.

    Args:
        protocol: the solver's protocol.
        attributes: attribute name -> value (registered names first); ``optimizer`` is
            adopted as ``main``, any other optimizer under its attribute name.
        accum_grad: ``optim.accum_grad`` (a plain optimizer cannot accumulate).

    Returns:
        The attribute names of plain torch optimizers (not routed through the protocol).

    Raises:
        OptimConfigError: a plain torch optimizer with accum_grad or precision set.
    """
    plain, seen = [], set()
    for attr, opt in attributes.items():
        if not isinstance(opt, torch.optim.Optimizer) or id(opt) in seen:
            continue
        seen.add(id(opt))
        if isinstance(opt, ManagedOptimizer):
            protocol.adopt("main" if attr == "optimizer" else attr, opt)
            continue
        if accum_grad != 1 or protocol.precision != "fp32":
            raise OptimConfigError(
                f"self.{attr} is a plain {type(opt).__name__}: optim.accum_grad and "
                "optim.precision need it built with audioflow.optim.build_optimizer "
                "(or audioflow.optim.managed(torch.optim.X)(...))"
            )
        plain.append(attr)
    return plain


def build_solver_protocol(
    cfg, attributes: Mapping, world_size: int, device: torch.device
) -> tuple[OptimProtocol, list[str]]:
    """A solver's protocol: over ``cfg.optim_sches``, or adopting its managed optimizers.

    Args:
        cfg: the XP's config (``optim``, ``optim_sches``).
        attributes: the solver's attribute name -> value, after ``build_model`` (the
            OptimSchedulers train ``attributes["model"]``).
        world_size: processes of the run (DDP when > 1).
        device: the solver's device.

    Returns:
        ``(protocol, plain)``: plain lists the attributes holding plain torch optimizers.

    Raises:
        OptimConfigError: a bad optim/optim_sches setting.
        AttributeError: ``optim_sches`` without ``self.model``.
    """
    optim = cfg.optim
    sches = cfg.get("optim_sches")
    if sches is None:
        protocol = build_protocol(optim, device.type)
        return protocol, adopt_optimizers(protocol, attributes, int(optim.accum_grad))
    model = attributes.get("model")
    if model is None:
        raise AttributeError("optim_sches needs build_model() to set self.model")
    protocol = build_optim_sches(
        sches,
        model,
        distributed=world_size > 1,
        accum_grad=int(optim.accum_grad),
        precision=str(optim.precision),
        ft_factor=float(optim.ft_factor),
    )
    return protocol, []
