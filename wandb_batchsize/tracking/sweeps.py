"""Batch-size sweeps: W&B sweep configs bounded by the memory ceiling.

``batch_size_sweep(max_batch=...)`` returns a W&B sweep config (a plain dict, as
``wandb sweep`` reads from YAML) whose ``batch_size`` takes the powers of two up
to the ceiling, with a ``seed`` per repeat. The same YAML runs on W&B's own agent
(``wandb sweep`` + ``wandb agent``) or offline with ``wandb-batchsize sweep run``
(``tracking/sweep_runner.py``); ``wandb-batchsize sweep analyze`` turns the runs
into a sweep-mode K_c (``tracking/sweep_results.py``).

Learning rate tied to the batch size
------------------------------------
A W&B grid takes the product of its parameters and cannot tie one parameter to
another, so the config never lists learning rates. It passes the rule as
constant parameters: ``lr_scaling`` (``"linear"`` or ``"sqrt"``), ``base_lr``,
``base_batch`` and optionally ``max_lr``; the program turns them into its
learning rate with :func:`lr_from_config` (see ``wandb_batchsize/demo/sweep_train.py``). Without
scaling, ``base_lr`` is passed as a constant ``lr``.

Validation
----------
Against W&B's own sweep-config JSON schema and the rules of W&B's ``sweeps``
package: :mod:`.sweep_schema` (its names are importable from here too). Nothing
here imports wandb.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from wandb_batchsize.tracking.sweep_schema import (  # noqa: F401 - public names live here too
    GOALS,
    METHODS,
    PARAM_NAME,
    SCHEMA_PATH,
    SweepConfigError,
    parameter_kind,
    sweep_config_violations,
    validate_sweep_config,
)

#: the demo training program shipped in the package (an absolute path: the agent
#: and ``sweep run`` find it from any directory)
DEFAULT_PROGRAM = str(Path(__file__).resolve().parents[1] / "demo" / "sweep_train.py")
DEFAULT_METRIC = "val/loss"
LR_SCALINGS = ("linear", "sqrt")
# keys that batch_size_sweep writes itself; extra_parameters may not redefine them
GENERATED_KEYS = ("batch_size", "seed", "lr", "lr_scaling", "base_lr", "base_batch", "max_lr")
_PARAM_KEYS = {
    "value",
    "values",
    "distribution",
    "min",
    "max",
    "mu",
    "sigma",
    "q",
    "a",
    "b",
    "probabilities",
    "parameters",
}


def load_sweep_config(path: str | Path) -> dict[str, Any]:
    """Read and validate a sweep YAML (or JSON) file."""
    path = Path(path)
    try:
        config = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"no sweep config at {path}") from None
    except yaml.YAMLError as exc:
        raise SweepConfigError([f"{path} is not valid YAML ({exc})"]) from None
    return validate_sweep_config(config)


class _SweepDumper(yaml.SafeDumper):
    """Block style, except short lists of scalars (``values: [8, 16, 32]``)."""


def _represent_list(dumper: yaml.SafeDumper, data: list) -> Any:
    flow = all(isinstance(v, (int, float, str, bool)) or v is None for v in data)
    return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=flow)


_SweepDumper.add_representer(list, _represent_list)


def dump_sweep_config(config: Mapping[str, Any]) -> str:
    """The YAML ``wandb sweep`` reads, keys in the order given."""
    return yaml.dump(
        dict(config), Dumper=_SweepDumper, sort_keys=False, default_flow_style=False, width=1000
    )


# -- learning rate tied to the batch size --------------------------------------------


def scaled_lr(
    batch_size: float,
    *,
    base_lr: float,
    base_batch: float,
    lr_scaling: str | None = None,
    max_lr: float | None = None,
) -> float:
    """The learning rate for ``batch_size`` under a scaling rule.

    - ``"linear"``: ``lr = base_lr * B / base_batch`` (Goyal et al. 2017,
      "Accurate, Large Minibatch SGD"; the regime below the critical batch size
      of McCandlish et al. 2018);
    - ``"sqrt"``: ``lr = base_lr * sqrt(B / base_batch)`` (Krizhevsky 2014;
      Hoffer et al. 2017; the usual rule for Adam-type optimizers);
    - ``None``: ``lr = base_lr``.

    ``max_lr`` caps the result (linear scaling up to a stable maximum).
    """
    if not (batch_size > 0 and base_batch > 0):
        raise ValueError(
            f"batch_size and base_batch must be positive, got {batch_size} and {base_batch}"
        )
    if not (base_lr > 0 and math.isfinite(base_lr)):
        raise ValueError(f"base_lr must be a positive number, got {base_lr}")
    ratio = float(batch_size) / float(base_batch)
    if lr_scaling in (None, "", "none"):
        lr = float(base_lr)
    elif lr_scaling == "linear":
        lr = base_lr * ratio
    elif lr_scaling == "sqrt":
        lr = base_lr * math.sqrt(ratio)
    else:
        raise ValueError(f"unknown lr_scaling {lr_scaling!r}; use one of {LR_SCALINGS} or None")
    if max_lr is not None:
        if not max_lr > 0:
            raise ValueError(f"max_lr must be positive, got {max_lr}")
        lr = min(lr, float(max_lr))
    return float(lr)


def lr_from_config(config: Mapping[str, Any], default: float | None = None) -> float | None:
    """The learning rate a sweep run should use, from its (W&B) config.

    An explicit ``lr`` wins; else ``base_lr`` scaled by ``lr_scaling`` from
    ``base_batch`` to ``batch_size`` (capped by ``max_lr``); else ``default``.
    """
    get = config.get
    if get("lr") is not None:
        return float(get("lr"))
    if get("base_lr") is None:
        return default
    batch_size = get("batch_size")
    base_batch = get("base_batch") or batch_size
    if batch_size is None:
        return float(get("base_lr"))
    return scaled_lr(
        float(batch_size),
        base_lr=float(get("base_lr")),
        base_batch=float(base_batch),
        lr_scaling=get("lr_scaling"),
        max_lr=None if get("max_lr") is None else float(get("max_lr")),
    )


# -- the batch-size grid -------------------------------------------------------------


def _as_ceiling(max_batch: Any) -> int:
    """An int, or a memory-search result exposing an integer ``batch_size``."""
    value = getattr(max_batch, "batch_size", max_batch)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value):
        raise ValueError(f"max_batch must be a positive integer, got {max_batch!r}")
    return int(value)


def power_of_two_grid(max_batch: int, min_batch: int = 1) -> list[int]:
    """Powers of two ``b`` with ``min_batch <= b <= max_batch``, ascending."""
    if min_batch < 1:
        raise ValueError(f"min_batch must be >= 1, got {min_batch}")
    if max_batch < min_batch:
        raise ValueError(
            f"min_batch ({min_batch}) is larger than max_batch ({max_batch}); "
            "the ceiling must be at least the smallest batch"
        )
    first = 1 << max(0, math.ceil(math.log2(min_batch)))
    grid = []
    b = first
    while b <= max_batch:
        grid.append(b)
        b *= 2
    return grid


def _parameter_spec(name: str, value: Any) -> dict[str, Any]:
    if isinstance(value, Mapping) and value and set(value) <= _PARAM_KEYS:
        return dict(value)
    return {"value": value}


def batch_size_sweep(
    max_batch: int | Any,
    min_batch: int = 8,
    metric: str = DEFAULT_METRIC,
    goal: str = "minimize",
    program: str = DEFAULT_PROGRAM,
    repeats: int = 1,
    lr_scaling: str | None = None,
    base_lr: float | None = None,
    base_batch: int | None = None,
    method: str = "grid",
    extra_parameters: Mapping[str, Any] | None = None,
    *,
    batch_sizes: Sequence[int] | None = None,
    max_lr: float | None = None,
    target: float | None = None,
    name: str | None = None,
    project: str | None = None,
    entity: str | None = None,
    min_sizes: int = 4,
) -> dict[str, Any]:
    """A W&B sweep config over batch sizes bounded by the memory ceiling.

    Parameters
    ----------
    max_batch
        The ceiling: the largest batch that fits (an int, or a memory-search
        result with an integer ``batch_size``).
    min_batch
        The smallest batch of the grid (rounded up to a power of two).
    metric, goal
        The metric W&B records as the sweep's objective (``goal`` is
        ``"minimize"`` or ``"maximize"``); ``sweep analyze`` reads the same key.
    program
        The script the agent runs (``sweeps/train.py`` by default).
    repeats
        Seeds per batch size: a ``seed`` parameter with values ``0..repeats-1``
        (a constant ``seed: 0`` when 1), so repeats aggregate in the analysis.
    lr_scaling, base_lr, base_batch, max_lr
        Tie the learning rate to the batch size (``"linear"`` or ``"sqrt"``, see
        :func:`scaled_lr`); passed as constants for the program to apply with
        :func:`lr_from_config`. ``base_batch`` defaults to the smallest batch.
        Without ``lr_scaling``, ``base_lr`` becomes a constant ``lr``.
    method
        ``"grid"`` (every batch size x seed, the default), ``"random"`` or
        ``"bayes"`` (which sample ``batch_size`` from the same values).
    extra_parameters
        More parameters for the program, as W&B specs (``{"epochs": {"value": 2}}``)
        or plain constants (``{"epochs": 2}``).
    batch_sizes
        An explicit list instead of the powers of two; each must lie within
        ``[min_batch, max_batch]``.
    target
        A target value of the metric: passed to the program as constant
        ``target``, which then also logs ``steps_to_target``.
    min_sizes
        Fewest distinct batch sizes accepted (sweep-mode analysis needs 4).

    Returns the config as a dict, validated against W&B's sweep schema.
    """
    if method not in METHODS:
        raise ValueError(f"unknown sweep method {method!r}; use one of {', '.join(METHODS)}")
    if goal not in GOALS:
        raise ValueError(f"unknown goal {goal!r}; use 'minimize' or 'maximize'")
    if not isinstance(metric, str) or not metric:
        raise ValueError("metric must be a non-empty metric name such as 'val/loss'")
    if not isinstance(program, str) or not program:
        raise ValueError("program must name the training script the agent runs")
    if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 1:
        raise ValueError(f"repeats must be an integer >= 1, got {repeats!r}")
    ceiling = _as_ceiling(max_batch)
    if ceiling < 1:
        raise ValueError(f"max_batch must be >= 1, got {ceiling}")
    if min_batch < 1:
        raise ValueError(f"min_batch must be >= 1, got {min_batch}")
    if min_batch > ceiling:
        raise ValueError(
            f"min_batch ({min_batch}) is larger than max_batch ({ceiling}); "
            "the ceiling must be at least the smallest batch"
        )

    if batch_sizes is not None:
        sizes = []
        for b in batch_sizes:
            if isinstance(b, bool) or not isinstance(b, (int, float)) or b != int(b) or b < 1:
                raise ValueError(f"batch sizes must be positive integers, got {b!r}")
            sizes.append(int(b))
        outside = [b for b in sizes if not min_batch <= b <= ceiling]
        if outside:
            raise ValueError(
                f"batch sizes {outside} lie outside [min_batch, max_batch] = [{min_batch}, {ceiling}]"
            )
        sizes = sorted(set(sizes))
    else:
        sizes = power_of_two_grid(ceiling, min_batch)
    if not sizes:
        raise ValueError(
            f"the batch-size grid is empty: no power of two lies in [{min_batch}, {ceiling}]; "
            "lower min_batch or pass batch_sizes"
        )
    if len(sizes) < min_sizes:
        raise ValueError(
            f"the batch-size grid {sizes} has {len(sizes)} sizes; sweep-mode analysis needs at "
            f"least {min_sizes} distinct sizes: lower min_batch, raise max_batch or pass batch_sizes"
        )

    parameters: dict[str, Any] = {"batch_size": {"values": sizes}}
    parameters["seed"] = {"values": list(range(repeats))} if repeats > 1 else {"value": 0}
    if lr_scaling not in (None, *LR_SCALINGS):
        raise ValueError(f"unknown lr_scaling {lr_scaling!r}; use one of {LR_SCALINGS} or None")
    if lr_scaling is not None:
        if base_lr is None:
            raise ValueError(f"lr_scaling={lr_scaling!r} needs base_lr (the lr at base_batch)")
        base = sizes[0] if base_batch is None else base_batch
        scaled_lr(sizes[0], base_lr=base_lr, base_batch=base, lr_scaling=lr_scaling, max_lr=max_lr)
        parameters["lr_scaling"] = {"value": lr_scaling}
        parameters["base_lr"] = {"value": float(base_lr)}
        parameters["base_batch"] = {"value": int(base)}
        if max_lr is not None:
            parameters["max_lr"] = {"value": float(max_lr)}
    else:
        if base_batch is not None or max_lr is not None:
            raise ValueError("base_batch and max_lr only apply with lr_scaling='linear' or 'sqrt'")
        if base_lr is not None:
            if not base_lr > 0:
                raise ValueError(f"base_lr must be positive, got {base_lr}")
            parameters["lr"] = {"value": float(base_lr)}
    if target is not None:
        if not math.isfinite(float(target)):
            raise ValueError(f"target must be a finite number, got {target}")
        parameters["target"] = {"value": float(target)}
    for key, value in (extra_parameters or {}).items():
        if key in parameters or key in GENERATED_KEYS:
            raise ValueError(
                f"extra_parameters may not redefine {key!r}: it is set by batch_size_sweep's "
                "own arguments (batch_sizes, repeats, base_lr, lr_scaling, ...)"
            )
        if not isinstance(key, str) or not PARAM_NAME.match(key):
            raise ValueError(
                f"parameter name {key!r} is not allowed by W&B: use letters, digits, '_', '.', '-' "
                "(no '/'), not starting with a digit"
            )
        parameters[key] = _parameter_spec(key, value)

    config: dict[str, Any] = {}
    if name:
        config["name"] = name
    if project:
        config["project"] = project
    if entity:
        config["entity"] = entity
    config["description"] = (
        f"batch-size sweep {sizes[0]}..{sizes[-1]} (ceiling {ceiling}), "
        f"{repeats} seed(s) per size, made by wandb-batchsize"
    )
    config["program"] = program
    config["method"] = method
    config["metric"] = {"name": metric, "goal": goal}
    config["parameters"] = parameters
    return validate_sweep_config(config)
