"""Validation of W&B sweep configs (``tracking/sweeps.py`` writes them).

Configs are checked against W&B's own sweep-config JSON schema, copied unchanged
from W&B's MIT-licensed ``sweeps`` package 0.2.0 (``schemas/``; wandb 0.31 does
not ship it and imports that package only for its local controller, which pins
``numpy<2``), with ``jsonschema``, plus the checks that package makes outside the
schema (min < max, probabilities, deprecated distributions) and its grid rule
(grid parameters must be discrete). Without ``jsonschema`` installed, the
schema's main rules are checked in code, with a warning. Nothing here imports
wandb.
"""

from __future__ import annotations

import json
import math
import re
import warnings
from collections.abc import Iterable, Mapping, Sequence
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

METHODS = ("grid", "random", "bayes")
GOALS = ("minimize", "maximize")
SCHEMA_PATH = Path(
    str(resources.files("wandb_batchsize.tracking") / "schemas" / "sweep_config.schema.json")
)
PARAM_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")
# parameter types W&B's grid search accepts (sweeps/grid_search.py)
_GRID_KINDS = ("constant", "categorical", "int_uniform", "q_uniform")
_DEPRECATED = {
    "log_uniform": "log_uniform_values",
    "inv_log_uniform": "inv_log_uniform_values",
    "q_log_uniform": "q_log_uniform_values",
}

_WARNED_NO_JSONSCHEMA = False


class SweepConfigError(ValueError):
    """A sweep config that W&B would reject; the message lists every violation."""

    def __init__(self, violations: Sequence[str]) -> None:
        self.violations = list(violations)
        super().__init__("invalid W&B sweep config: " + "; ".join(self.violations))


# -- validation ----------------------------------------------------------------------


@lru_cache(maxsize=1)
def _validator() -> Any:
    import jsonschema

    schema = json.loads(SCHEMA_PATH.read_text())
    checker = jsonschema.FormatChecker()
    # the two custom formats W&B's sweeps package registers (sweeps/config/schema.py)
    checker.checks("float")(lambda value: isinstance(value, float))
    checker.checks("integer")(lambda value: isinstance(value, int))
    return jsonschema.Draft7Validator(schema, format_checker=checker)


def parameter_kind(spec: Mapping[str, Any]) -> str:
    """The distribution a parameter spec describes, as W&B's sweeps engine infers it.

    ``{"value": 1}`` is ``constant``, ``{"values": [...]}`` ``categorical``, a
    ``{"min", "max"}`` pair of ints ``int_uniform`` (of floats ``uniform``), an
    explicit ``distribution`` wins, and ``{"parameters": {...}}`` is ``nested``.
    """
    if "distribution" in spec:
        return str(spec["distribution"])
    if "parameters" in spec:
        return "nested"
    if "value" in spec:
        return "constant"
    if "values" in spec:
        return "categorical_w_probabilities" if "probabilities" in spec else "categorical"
    if "min" in spec and "max" in spec:
        ints = all(
            isinstance(spec[k], int) and not isinstance(spec[k], bool) for k in ("min", "max")
        )
        return "int_uniform" if ints else "uniform"
    return "unknown"


def _walk_parameters(params: Mapping[str, Any], prefix: str = "") -> Iterable[tuple[str, Any]]:
    for name, spec in params.items():
        if (
            isinstance(spec, Mapping)
            and "parameters" in spec
            and isinstance(spec["parameters"], Mapping)
        ):
            yield from _walk_parameters(spec["parameters"], f"{prefix}{name}.")
        else:
            yield f"{prefix}{name}", spec


def _core_schema_violations(config: Mapping[str, Any]) -> list[str]:
    """The schema's main rules, for when ``jsonschema`` is not installed (it is a
    ``dev`` dependency): required keys, methods, goals, parameter names."""
    global _WARNED_NO_JSONSCHEMA
    if not _WARNED_NO_JSONSCHEMA:
        _WARNED_NO_JSONSCHEMA = True
        warnings.warn(
            "jsonschema is not installed: checking the sweep config against W&B's main rules "
            "only (pip install jsonschema for the full W&B schema)",
            RuntimeWarning,
            stacklevel=3,
        )
    out = [
        f"'{key}' is a required property" for key in ("method", "parameters") if key not in config
    ]
    if "method" in config and config["method"] not in (*METHODS, "custom"):
        out.append(f"method: {config['method']!r} is not one of {[*METHODS, 'custom']}")
    metric = config.get("metric")
    if metric is not None:
        if not isinstance(metric, Mapping) or "name" not in metric:
            out.append("metric: 'name' is a required property")
        elif metric.get("goal", "minimize") not in GOALS:
            out.append(f"metric/goal: {metric.get('goal')!r} is not one of {list(GOALS)}")
    params = config.get("parameters")
    if params is not None:
        if not isinstance(params, Mapping) or not params:
            out.append("parameters: should be a non-empty mapping")
        else:
            out += [
                f"parameters: {name!r} does not match {PARAM_NAME.pattern!r}"
                for name in params
                if not PARAM_NAME.match(str(name))
            ]
    return out


def sweep_config_violations(config: Any) -> list[str]:
    """Every reason W&B would reject ``config`` (empty when it is valid).

    The JSON schema of W&B's ``sweeps`` 0.2.0, then the checks that package
    makes in code (``schema_violations_from_proposed_config``): min < max,
    probabilities as long as values and summing to 1, no deprecated
    distributions; and, for ``method: grid``, only discrete parameters (W&B's
    grid search refuses the others when the sweep starts).
    """
    if not isinstance(config, Mapping):
        return [f"a sweep config is a mapping, got {type(config).__name__}"]
    violations: list[str] = []
    try:
        validator = _validator()
    except ImportError:
        violations += _core_schema_violations(config)
    else:
        for error in sorted(validator.iter_errors(dict(config)), key=lambda e: list(e.path)):
            where = "/".join(str(p) for p in error.absolute_path)
            violations.append(f"{where}: {error.message}" if where else error.message)
    params = config.get("parameters")
    if not isinstance(params, Mapping):
        return violations
    for name, spec in _walk_parameters(params):
        if not isinstance(spec, Mapping):
            violations.append(f"parameter {name!r} must be a mapping such as {{value: 1}}")
            continue
        if "min" in spec and "max" in spec:
            try:
                if spec["min"] >= spec["max"]:
                    violations.append(
                        f"{name}: min {spec['min']} is not less than max {spec['max']}"
                    )
            except TypeError:
                pass  # the schema already reported the types
        if "values" in spec and "probabilities" in spec:
            values, probs = spec["values"], spec["probabilities"]
            if isinstance(values, list) and isinstance(probs, list):
                if len(values) != len(probs):
                    violations.append(f"{name}: values and probabilities differ in length")
                elif all(isinstance(p, (int, float)) for p in probs) and not math.isclose(
                    sum(probs), 1.0, rel_tol=1e-6, abs_tol=1e-9
                ):
                    violations.append(f"{name}: probabilities {probs} do not sum to 1")
        dist = spec.get("distribution")
        if dist in _DEPRECATED:
            violations.append(
                f"{name}: distribution {dist!r} is deprecated, use {_DEPRECATED[dist]!r} "
                "(bounds given as values, not logs)"
            )
        if config.get("method") == "grid":
            kind = parameter_kind(spec)
            if kind not in _GRID_KINDS:
                violations.append(
                    f"{name}: grid search needs discrete parameters (value, values, "
                    f"int_uniform, q_uniform), got {kind!r}"
                )
    return violations


def validate_sweep_config(config: Any) -> dict[str, Any]:
    """Return ``config`` (as a dict) if W&B would accept it, else raise :class:`SweepConfigError`."""
    violations = sweep_config_violations(config)
    if violations:
        raise SweepConfigError(violations)
    return dict(config)
